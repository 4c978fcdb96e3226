"""The docs cannot rot: every `python ...` command they quote runs a script that exists with keys it
accepts, every figure they show exists and can be refreshed, and every link lands on a heading."""

import contextlib
import dataclasses
import glob
import importlib.util
import io
import os
import re
import shlex
import sys

import pytest
from conftest import ROOT

from tools import refresh_docs

DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
# the scripts' own usage lines (--help prints them) and the configs' comments are documentation too
SOURCES = [os.path.join(ROOT, p) for p in ("train.py", "sample.py")] + sorted(
    glob.glob(os.path.join(ROOT, "tools", "*.py")) + glob.glob(os.path.join(ROOT, "config", "*.py"))
    + glob.glob(os.path.join(ROOT, "config", "sweeps", "*.py")))


def quoted_commands(path):
    """(line number, command) for every python command a file quotes. Markdown: code blocks and inline
    code. Python: usage lines in docstrings and comments (`    python train.py ...`, `#   python ...`)."""
    text = open(path).read().replace("\\\n", " ")
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        if path.endswith(".py"):
            spans = [line.strip().lstrip("#").strip()]
        else:
            spans = re.findall(r"`([^`]*)`", line) if "`" in line else [line]
        for span in spans:
            m = re.search(r"(?:^|\s)((?:\S*python3?|torchrun)\s.*)", span) if path.endswith(".md") else \
                re.match(r"((?:python3?|torchrun)\s.*)", span)
            if m and re.search(r"\.py\b", m.group(1)):
                found.append((n, m.group(1)))
    return found


def split(command):
    """One shell command line: each `&&`-joined command as (script, its arguments), python scripts only.
    <placeholders> and [optional parts] are dropped; a quote left open (a prompt that goes on to the next
    line) is closed."""
    command = re.sub(r"\[[^\]]*\]", "", command.split("  #")[0])  # [optional parts]
    command = re.sub(r"<[^>]*>", "<>", command)  # <placeholders>: an argument holding one is not checked
    try:
        words = shlex.split(command)
    except ValueError:
        words = shlex.split(command + '"')
    out, current = [], []
    for w in words + ["&&"]:
        if w in ("&&", "|", ";"):
            script = next((i for i, x in enumerate(current) if x.endswith(".py")), None)
            if script is not None and not any(x in ("-m", "-c") for x in current[:script]):
                out.append((current[script], current[script + 1:]))
            current = []
        else:
            current += [] if "<>" in w else [w]
    return out


_HELP = {}


def accepted_keys(script, args):
    """The --keys a script accepts, read from its own --help (run in this process)."""
    key = (script, args[0] if args and re.fullmatch(r"[a-z]\w*", args[0]) else "")  # a subcommand: its own keys
    if key not in _HELP:
        name = "doc_check_" + re.sub(r"\W", "_", script)
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, script))
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # (help reads its source)
        spec.loader.exec_module(module)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            module.main(([key[1]] if key[1] else []) + ["--help"])
        _HELP[key] = set(re.findall(r"--(\w+)", out.getvalue())) | {"help"}
    return _HELP[key]


def all_commands():
    return [(os.path.relpath(path, ROOT), n, c) for path in DOCS + SOURCES for n, c in quoted_commands(path)]


def test_the_docs_quote_commands_at_all():
    readme = [c for p, _, c in all_commands() if p == "README.md"]
    assert len(readme) >= 10 and any("tools/analyze.py positions" in c for c in readme)


@pytest.mark.parametrize("where, line, command", all_commands(), ids=lambda v: str(v)[:60])
def test_every_quoted_command_names_a_script_and_keys_it_accepts(where, line, command):
    for script, args in split(command):
        script = script.removeprefix("./")
        assert os.path.exists(os.path.join(ROOT, script)), f"{where}:{line}: {script} does not exist"
        if not script.startswith(("prepare/", "config/")) and script not in (
                "train.py", "sample.py") and not script.startswith("tools/"):
            continue  # another repository's script (nanoGPT's), quoted for comparison
        for a in args:
            if a.endswith(".py") and not a.startswith("-"):
                assert os.path.exists(os.path.join(ROOT, a)), f"{where}:{line}: config {a} does not exist"
        if script.startswith("config/"):
            continue
        if script == "tools/analyze.py" and args and args[0].isupper():
            args = ["tokens", *args[1:]]  # TOOL, a placeholder: check against one tool's keys
        keys = {a[2:].split("=")[0] for a in args if a.startswith("--")} - {"key"}  # --key=value: the syntax
        unknown = keys - accepted_keys(script, args)
        assert not unknown, f"{where}:{line}: {script} does not accept --{', --'.join(sorted(unknown))}"


def markdown_links(path):
    text = re.sub(r"```.*?```", "", open(path).read(), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_and_images_point_at_files_and_headings_that_exist():
    for path in DOCS:
        for link in markdown_links(path):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            target, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
            assert os.path.exists(target), f"{os.path.relpath(path, ROOT)} links to missing {link}"
            if anchor and target.endswith(".md"):
                headings = re.findall(r"^#+\s+(.*)$", open(target).read(), flags=re.M)
                where = os.path.relpath(path, ROOT)
                assert anchor in {slug(h) for h in headings}, f"{where}: no heading #{anchor} in {link}"


def test_every_curated_file_can_be_refreshed_and_every_figure_shown_is_curated():
    listed = {os.path.join(name, os.path.basename(f)) for name, e in refresh_docs.EXPERIMENTS.items() for f in e.files}
    on_disk = {os.path.relpath(p, refresh_docs.DOCS) for p in glob.glob(os.path.join(refresh_docs.DOCS, "*", "*"))}
    assert on_disk <= listed, f"not refreshable by tools/refresh_docs.py: {sorted(on_disk - listed)}"
    for path in DOCS:
        for link in markdown_links(path):
            if link.endswith(".png"):
                full = os.path.normpath(os.path.join(os.path.dirname(path), link))
                assert full.startswith(refresh_docs.DOCS + os.sep), f"{path}: {link} is not under docs/results/"


def test_refresh_docs_copies_what_exists_and_names_the_command_for_the_rest(tmp_path, capsys):
    root, docs = tmp_path / "repo", tmp_path / "docs"
    (root / "out-facts").mkdir(parents=True)
    for f in refresh_docs.EXPERIMENTS["main_job"].files:
        (root / "out-facts" / f).write_bytes(b"new " + f.encode())
    done = refresh_docs.refresh(["main_job", "first_experiment"], root=str(root), docs=str(docs))
    assert done["first_experiment"] is None and len(done["main_job"]) == 3
    assert (docs / "main_job" / "loss.png").read_bytes() == b"new loss.png"
    assert not list(docs.rglob("*.tmp"))
    with pytest.raises(SystemExit, match="unknown experiment"):
        refresh_docs.main(["nonsense"])
    refresh_docs.main(["--list"])
    assert "python train.py" in capsys.readouterr().out


def documented_keys(path, section="## Every key"):
    """The keys of a doc's key tables: the `backticked` names in the first cell of every table row between
    `section` and the next `## ` heading (header and separator rows hold none)."""
    keys, inside = set(), False
    for line in open(path).read().splitlines():
        if line.startswith("## "):
            inside = line.strip() == section
        elif inside and line.startswith("|"):
            keys |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return keys


def test_training_md_tables_list_every_config_key_and_no_other():
    from helpers.config import TrainConfig
    from model import GPTConfig
    fields = {f.name for cls in (GPTConfig, TrainConfig) for f in dataclasses.fields(cls)}
    documented = documented_keys(os.path.join(ROOT, "docs", "training.md"))
    missing, stale = sorted(fields - documented), sorted(documented - fields)
    assert not missing, f"docs/training.md#every-key has no row for {missing}: add one with its default and meaning"
    assert not stale, f"docs/training.md#every-key has rows for keys that no longer exist: {stale}"


def layout_row(folder):
    """The README's "Where things are" table: the description in the row of `folder` (e.g. "helpers/")."""
    m = re.search(rf"^\| `{re.escape(folder)}` \| (.*) \|$", open(os.path.join(ROOT, "README.md")).read(), re.M)
    assert m, f"README.md's layout table has no row for {folder}"
    return m.group(1)


def modules(folder):
    """The modules of a folder of the repository, by name, without __init__ and private helpers (_root)."""
    return {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, folder, "*.py"))
            if not os.path.basename(p).startswith("_")}


def assert_names_exactly(named, folder, where):
    missing, stale = modules(folder) - named, named - modules(folder)
    assert not missing and not stale, f"{where}: add {sorted(missing)}, drop {sorted(stale)}"


def test_the_readme_layout_names_every_helpers_module_and_every_tool():
    assert_names_exactly(set(re.findall(r"`(\w+)`", layout_row("helpers/"))), "helpers", "README's helpers/ row")
    assert_names_exactly(set(re.findall(r"`(\w+)\.py`", layout_row("tools/"))), "tools", "README's tools/ row")


def test_the_helpers_package_docstring_lists_every_helpers_module():
    import helpers

    assert_names_exactly(set(re.findall(r"^    (\w+)  ", helpers.__doc__, re.M)), "helpers", "helpers/__init__.py")


def readme_section(heading):
    text = open(os.path.join(ROOT, "README.md")).read()
    return text.split(f"\n## {heading}\n")[1].split("\n## ")[0]


def test_the_readme_lists_every_plot_a_run_draws(tiny_run, tmp_path):
    from helpers.plotting import plot_run

    section = readme_section("What the main job leaves behind")
    for path in plot_run(tiny_run, str(tmp_path)):
        assert f"`{os.path.basename(path)}`" in section, f"README's run folder table has no {os.path.basename(path)}"


def test_the_readme_says_which_prepare_scripts_download_and_how_to_give_a_local_file():
    text = open(os.path.join(ROOT, "README.md")).read()
    for script in sorted(set(re.findall(r"python (prepare/\w+\.py)", text))):
        if "read_text_or_download" in open(os.path.join(ROOT, script)).read():
            assert re.search(rf"`{script}` downloads", text), f"README does not say that {script} downloads"
            assert f"python {script} --input " in text, f"README does not give {script}'s --input form"


def test_init_from_is_documented_with_every_source_load_source_accepts():
    from helpers.config import TrainConfig, field_comments

    row = next(line for line in open(os.path.join(ROOT, "docs", "training.md")) if line.startswith("| `init_from` |"))
    for where, text in (("docs/training.md", row), ("TrainConfig's comment", field_comments(TrainConfig)["init_from"])):
        for source in ("scratch", "resume", "gpt2", "gpt2-xl", "hub id", "HF", "run folder", "checkpoint file"):
            assert source in text, f"{where} does not name {source!r} among init_from's sources"
