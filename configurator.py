"""
Command-line configuration, nanoGPT's habit done properly:

    python train.py [config/file.py ...] [--key=value ...]

Config files are plain Python whose top-level assignments override defaults; `--key=value` overrides
come after, in order. Every key belongs to one of the dataclasses the script passes in, so a typo
fails with the closest valid name, and every value is checked against the field's type.
`--help` lists every key with its default and the comment written next to it in the source.
"""

import ast
import dataclasses
import difflib
import inspect
import re
import sys
import types
import typing


class UserError(Exception):
    """Bad input from the user: printed as one line, no traceback (see `main_guard`)."""


def main_guard(main):
    """Run main(); turn UserError into `error: ...` on stderr and exit status 2."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def field_comments(cls):
    """{field: inline comment} read from the dataclass source, so the docs live next to the code."""
    comments = {}
    for c in cls.__mro__:
        if not dataclasses.is_dataclass(c):
            continue
        for line in inspect.getsource(c).splitlines():
            m = re.match(r"\s+(\w+)\s*:[^=]*=.*?#\s*(.*)$", line)
            if m and m.group(1) not in comments:
                comments[m.group(1)] = m.group(2)
    return comments


def _type_name(t):
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def coerce(name, value, t):
    """Return value converted to type t, or raise UserError saying what was expected."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):  # Optional[X] and X | None
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(name, value, inner[0])
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            elem = args[0] if args else object
            return tuple(coerce(name, v, elem) for v in value)
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif t in (bool, str, dict):
        if isinstance(value, t):
            return value
    elif t is object:
        return value
    raise UserError(f"{name} must be {_type_name(t)}, got {value!r} ({type(value).__name__})")


def parse_cli_value(raw, t):
    """Strings stay strings for str fields; everything else is a Python literal (True, 3e-4, (2,4))."""
    if t is str:
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # coerce() then reports the type mismatch


def configure(defaults, argv=None, description=""):
    """Parse argv into copies of the dataclass instances in `defaults`.

    Returns (list of new instances, set of keys the user set). Raises UserError on any bad input.
    """
    argv = sys.argv[1:] if argv is None else argv
    owner, types_ = {}, {}
    for i, d in enumerate(defaults):
        hints = typing.get_type_hints(type(d))
        for f in dataclasses.fields(d):
            if f.name in owner:
                raise AssertionError(f"config key {f.name} defined twice")
            owner[f.name], types_[f.name] = i, hints[f.name]

    if "--help" in argv or "-h" in argv:
        print_help(defaults, description)
        sys.exit(0)

    def lookup(key):
        if key not in owner:
            close = difflib.get_close_matches(key, owner, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else "; see --help for the list"
            raise UserError(f"unknown config key {key!r}{hint}")
        return types_[key]

    values = {}
    for arg in argv:
        if not arg.startswith("--"):  # a config file
            try:
                with open(arg) as f:
                    source = f.read()
            except OSError:
                raise UserError(f"config file {arg} not found (config files live in config/)")
            scope = {"__file__": arg}  # so a config can find files beside it
            exec(compile(source, arg, "exec"), scope)
            for key, val in scope.items():
                if key.startswith("_") or isinstance(val, (types.ModuleType, types.FunctionType, type)):
                    continue
                values[key] = coerce(key, val, lookup(key))
        else:
            key, eq, raw = arg[2:].partition("=")
            if not eq:
                raise UserError(f"expected --key=value, got {arg!r}")
            t = lookup(key)
            values[key] = coerce(key, parse_cli_value(raw, t), t)

    out = []
    for i, d in enumerate(defaults):
        mine = {k: v for k, v in values.items() if owner[k] == i}
        try:
            out.append(dataclasses.replace(d, **mine))  # re-runs __post_init__ checks
        except ValueError as e:
            raise UserError(str(e)) from None
    return out, set(values)


def print_help(defaults, description):
    print(description.strip() + "\n" if description else "", end="")
    print("usage: [config/file.py ...] [--key=value ...]\n")
    for d in defaults:
        comments = field_comments(type(d))
        print(f"{type(d).__name__}:")
        for f in dataclasses.fields(d):
            default = repr(getattr(d, f.name))
            print(f"  --{f.name:<28} {default:<18} {comments.get(f.name, '')}")
        print()
