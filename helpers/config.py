"""
Configuration: nanoGPT's habit done properly, and the keys of a training run.

    python train.py [config/file.py ...] [--key=value ...]

Config files are plain Python whose top-level assignments override defaults; `--key=value` overrides
come after, in order. Every key belongs to one of the dataclasses the script passes in, so a typo
fails with the closest valid name, and every value is checked against the field's type.
`--help` lists every key with its default and the comment written next to it in the source.

TrainConfig (below) holds train.py's keys; the tools that build a training step (tools/bench.py)
read the same ones. The network's keys are model.GPTConfig's.
"""

import ast
import dataclasses
import difflib
import importlib.util
import inspect
import os
import re
import sys
import types
import typing
from dataclasses import dataclass

from helpers.tracking import TRACKERS
from model import GPTConfig


class UserError(Exception):
    """Bad input from the user: printed as one line, no traceback (see `main_guard`)."""
    status = 2  # the exit status main_guard gives it


class Interrupted(UserError):
    """Ctrl-C, said in one line (what was kept), with the shell's exit status for SIGINT."""
    status = 130


def main_guard(main):
    """Run main(); turn UserError into `error: ...` on stderr and its exit status (2; Interrupted: 130).
    A reader that stops early (`python train.py --help | head`) ends the script quietly, as the Python
    docs advise for SIGPIPE: stdout goes to devnull, so nothing fails again at exit, and the status is 1."""
    try:
        main()
        sys.stdout.flush()  # what is still buffered: a closed pipe shows here, not at exit
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    except KeyboardInterrupt:  # Ctrl-C where no command says more: one line, the shell's status for SIGINT
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(130)


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


def configure(defaults, argv=None, description="", prog=None):
    """Parse argv into copies of the dataclass instances in `defaults`. prog: the command --help names
    (default: the calling script, from the repository root, e.g. train.py or tools/compare.py).

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
        caller = inspect.currentframe().f_back.f_code.co_filename
        print_help(defaults, description, prog or os.path.relpath(caller, os.path.dirname(os.path.dirname(__file__))))
        sys.stdout.flush()  # (a closed pipe raises here, inside main_guard)
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
            try:
                exec(compile(source, arg, "exec"), scope)
            except SyntaxError as e:
                raise UserError(f"config file {arg}, line {e.lineno}: {e.msg}") from None
            except Exception as e:
                raise UserError(f"config file {arg} failed to run ({type(e).__name__}: {e})") from None
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


def print_help(defaults, description, prog):
    print(description.strip() + "\n" if description else "", end="")
    print(f"usage: {prog} [config/file.py ...] [--key=value ...]\n")
    for d in defaults:
        comments = field_comments(type(d))
        print(f"{type(d).__name__}:")
        for f in dataclasses.fields(d):
            default = repr(getattr(d, f.name))
            print(f"  --{f.name:<28} {default:<18} {comments.get(f.name, '')}")
        print()


# -----------------------------------------------------------------------------
# The keys of a training run (train.py). Model keys (n_layer, block_size, ...) are GPTConfig's.

@dataclass
class TrainConfig:
    # I/O
    out_dir: str = "out-facts"  # the run's folder: ckpt.pt, config.json, metrics.jsonl and the plots
    plot_dir: str = ""  # where the PNGs go; "" means out_dir
    eval_interval: int = 100  # evaluate every this many iterations (and at 0 and at max_iters)
    log_interval: int = 50  # print a progress line every this many iterations
    eval_iters: int = 10  # batches per split per evaluation; 0: the whole split, every target token once
    eval_only: bool = False  # evaluate once and exit
    head_scores: bool = False  # every eval also scores each head as previous-token/duplicate/induction head (docs/induction.md)
    always_save_checkpoint: bool = False  # save at every eval, not only when val loss improves
    init_from: str = "scratch"  # "scratch", "resume" (out_dir/ckpt.pt), or weights to fine-tune: gpt2..gpt2-xl, an HF hub id or dir, a run folder, a checkpoint file
    overwrite: bool = False  # allow a scratch run to replace an existing checkpoint in out_dir
    plot_only: bool = False  # redraw the plots from out_dir/metrics.jsonl and exit
    log_to: str = ""  # also log metrics rows and config to "tensorboard" (out_dir/tensorboard/), "wandb", "trackio"; "": off
    log_project: str = ""  # the tracker's project; "": the folder holding out_dir, else "small-gpt-lab"
    log_run_name: str = ""  # the run's name in the tracker; "": out_dir's own name
    log_group: str = ""  # wandb/trackio: the group of related runs (tools/compare.py: the variant); "": none
    # data
    dataset: str = "facts"  # reads data/<dataset>/{train,val}.bin and meta.json
    data_dir: str = ""  # "" means data/<dataset> next to train.py
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step (split across DDP ranks)
    batch_size: int = 12  # sequences per micro-batch
    respect_doc_boundaries: bool = True  # windows stay inside one document (from its start if it fits); False: nanoGPT's
    full_batch: bool = False  # each step trains on the whole train split, every window once (grokking); not batch_size
    # optimizer: AdamW, or Muon for the hidden matrices and AdamW for the rest
    optimizer: str = "adamw"  # "adamw", or "muon": torch.optim.Muon on the blocks' weight matrices, AdamW on the rest
    learning_rate: float = 2e-3  # peak learning rate (AdamW's)
    max_iters: int = 500  # optimizer steps
    weight_decay: float = 0.1  # on matrices and embeddings only
    beta1: float = 0.9  # AdamW's momentum decay
    beta2: float = 0.99  # AdamW's second-moment decay (0.95 for large models, 0.99 for small batches)
    grad_clip: float = 1.0  # clip the global gradient norm at this value; 0 disables
    skip_nonfinite: int = 0  # NaN/inf steps to skip (no update) before the run stops; 0: stop at the first
    muon_lr: float = 0.02  # Muon's peak learning rate (optimizer="muon"); the schedule scales it like learning_rate
    muon_momentum: float = 0.95  # Muon's momentum (Nesterov)
    muon_weight_decay: float = 0.0  # Muon's decoupled weight decay (multiplied by its learning rate)
    grad_projection: str = "none"  # "none", or "tangent": each weight's gradient made orthogonal to that weight (⊥Grad)
    # learning-rate schedule: linear warmup, then cosine down to min_lr, or constant and a short cooldown (WSD)
    decay_lr: bool = True  # False keeps learning_rate constant after warmup
    warmup_iters: int = 50  # linear warmup steps
    lr_decay_iters: int = 500  # steps over which the cosine runs (~max_iters per Chinchilla; wsd ignores it: its cooldown ends at max_iters)
    min_lr: float = 2e-4  # final learning rate (~learning_rate/10 per Chinchilla)
    lr_schedule: str = "cosine"  # "cosine" (over lr_decay_iters), or "wsd": learning_rate, then down to min_lr over the last cooldown_frac of max_iters
    cooldown_frac: float = 0.2  # wsd: the share of max_iters spent cooling down (Hägele et al. 2024: 0.1-0.2 matches cosine)
    cooldown_shape: str = "1-sqrt"  # wsd: the cooldown's shape, "1-sqrt" (the paper's best) or "linear"
    save_at: tuple[int, ...] = ()  # also save out_dir/ckpt_<iter>.pt at these iterations (wsd: before the cooldown, where branches start)
    resume_from: str = ""  # init_from=resume continues this checkpoint, not out_dir/ckpt.pt (a cooldown branch: a wsd run's ckpt_<iter>.pt)
    # system
    device: str = "auto"  # "cpu", "cuda", "cuda:1", "mps"; "auto" is cuda when available, else cpu
    dtype: str = "auto"  # "float32", "bfloat16" or "float16"; "auto": bfloat16 on CUDA if supported, else float32
    compile: bool = False  # torch.compile the model (minutes of warm-up; worth it on GPU)
    seed: int = 1337  # seeds init, dropout and batch sampling
    target_val_loss: float = 0.0  # 0: off; X: stop at the first eval with val loss <= X and record the time to it
    target_val_acc: float = 0.0  # 0: off; X: the same at the first eval with val acc >= X (grokking: 0.95)
    backend: str = "auto"  # DDP backend: "nccl" on CUDA, "gloo" on CPU
    # priming (model.BiasLayer): train only the bias layers of a priming model on top of a frozen base
    freeze_base: bool = False  # load base into a priming=True model, train only its bias layers on doc -> rest
    base: str = ""  # the base model for freeze_base: a run folder, a checkpoint file, gpt2..gpt2-xl or an HF dir
    # forgetting (helpers/knowledge.py, on prepare/world.py's fixed world): push out facts available elsewhere
    forget_weight: float = 0.0  # 0: off; w: LM loss on open-book documents only, + w x KL(uniform over candidates || p) on closed-book questions
    forget_batch_size: int = 64  # closed-book questions per step for the forgetting term
    forget_fraction: float = 1.0  # share of the world's people in the forget set (prepare/world.py forget_split); 1: all of them
    retain_weight: float = 0.0  # 0: off; w: + w x the answer loss on closed-book questions about the retain set (needs forget_fraction < 1; works with forget_weight=0 too)


# The main job's model (`python train.py`): small enough to train on a laptop CPU in a few minutes.
MAIN_JOB_MODEL = GPTConfig(block_size=384, vocab_size=58, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)


def check_log_to(log_to):
    """An unknown tracker, or one whose package is missing, in one line before anything is written."""
    if log_to not in ("", *TRACKERS):
        raise UserError(f"log_to must be '' (metrics.jsonl only), {', '.join(map(repr, TRACKERS))}; got {log_to!r}")
    if log_to and importlib.util.find_spec(log_to) is None:  # (looked up, not imported: wandb is slow to import)
        raise UserError(f"log_to={log_to} needs the {log_to} package, which is not installed: pip install {log_to}")


def cooldown_start(c):
    """The iteration where a wsd run's cooldown begins: its last cooldown_frac of max_iters decays."""
    return c.max_iters - round(c.cooldown_frac * c.max_iters)


def check_train_config(c):
    """Reject bad training keys before anything is read or written, with one line that says what to do."""
    if not c.out_dir.strip():
        raise UserError("out_dir is empty: give a folder, e.g. --out_dir=out-facts")
    if not c.init_from:
        raise UserError("init_from must be 'scratch', 'resume', or a model to fine-tune (gpt2, a run folder, an HF directory)")
    check_log_to(c.log_to)
    if c.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"dtype must be auto, float32, bfloat16 or float16, got {c.dtype!r}")
    for name in ("batch_size", "gradient_accumulation_steps", "eval_interval", "log_interval"):
        if getattr(c, name) < 1:
            raise UserError(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.eval_iters < 0:
        raise UserError(f"eval_iters must be >= 1 batches, or 0 for the whole split; got {c.eval_iters}")
    if c.eval_iters == 0 and c.freeze_base:
        raise UserError("eval_iters=0 (the whole split) is not implemented for freeze_base's priming batches: "
                        "give a number of batches, e.g. --eval_iters=50")
    for name in ("learning_rate", "min_lr", "muon_lr", "weight_decay", "muon_weight_decay", "grad_clip",
                 "warmup_iters"):
        if getattr(c, name) < 0:
            raise UserError(f"{name} must be >= 0, got {getattr(c, name)}")
    for name in ("beta1", "beta2", "muon_momentum"):
        if not 0 <= getattr(c, name) < 1:
            raise UserError(f"{name} must be in [0, 1), got {getattr(c, name)}")
    if c.skip_nonfinite < 0:
        raise UserError(f"skip_nonfinite must be >= 0 (0: stop at the first non-finite step), got {c.skip_nonfinite}")
    if c.max_iters < 0:
        raise UserError(f"max_iters must be >= 0, got {c.max_iters}")
    if c.optimizer not in ("adamw", "muon"):
        raise UserError(f"optimizer must be 'adamw' or 'muon', got {c.optimizer!r}")
    if c.grad_projection not in ("none", "tangent"):
        raise UserError(f"grad_projection must be 'none' or 'tangent' (⊥Grad), got {c.grad_projection!r}")
    if c.lr_schedule not in ("cosine", "wsd"):
        raise UserError(f"lr_schedule must be 'cosine' or 'wsd' (warmup-stable-decay), got {c.lr_schedule!r}")
    if c.cooldown_shape not in ("1-sqrt", "linear"):
        raise UserError(f"cooldown_shape must be '1-sqrt' or 'linear', got {c.cooldown_shape!r}")
    if not 0 < c.cooldown_frac <= 1:
        raise UserError(f"cooldown_frac must be in (0, 1] (the share of max_iters that cools down), got {c.cooldown_frac}")
    wsd = c.lr_schedule == "wsd" and c.decay_lr
    if wsd and c.warmup_iters > cooldown_start(c):
        raise UserError(f"the warmup ({c.warmup_iters} iterations) runs past the cooldown's start at iteration "
                        f"{cooldown_start(c)}: lower --warmup_iters or --cooldown_frac")
    last = cooldown_start(c) if wsd else c.max_iters  # a branch starts where the learning rate is still constant
    outside = [k for k in c.save_at if not 0 < k <= last]
    if outside:
        where = f"before the cooldown, which starts at iteration {last}" if wsd else f"within max_iters={last}"
        raise UserError(f"save_at {outside[0]} is not in 1..{last}: give iterations {where}")
    if c.resume_from and c.init_from != "resume":
        raise UserError(f"resume_from continues a checkpoint exactly: add --init_from=resume (init_from={c.init_from} "
                        f"would load only its weights)")
    if c.full_batch and (c.gradient_accumulation_steps != 1 or c.freeze_base):
        raise UserError("full_batch trains on the whole train split in one step: keep gradient_accumulation_steps=1 "
                        "and freeze_base=False")
    if c.optimizer == "muon" and c.learning_rate <= 0:
        raise UserError("optimizer='muon' scales muon_lr by the schedule's learning_rate / learning_rate: "
                        "learning_rate must be > 0")
    if c.target_val_loss < 0:
        raise UserError(f"target_val_loss must be >= 0 (0 = off), got {c.target_val_loss}")
    if not 0 <= c.target_val_acc <= 1:
        raise UserError(f"target_val_acc must be in [0, 1] (0 = off), got {c.target_val_acc}")
    if c.target_val_loss and c.target_val_acc:
        raise UserError("give one target: target_val_loss or target_val_acc, not both")
    if c.freeze_base and c.init_from == "scratch" and not c.base:
        raise UserError("freeze_base needs --base=MODEL, the base model to prime (a run folder, a checkpoint, gpt2)")
    if c.freeze_base and c.init_from not in ("scratch", "resume"):
        raise UserError(f"freeze_base primes the model given by --base: pass --base={c.init_from} and leave init_from at scratch")
    if c.freeze_base and c.optimizer == "muon":
        raise UserError("freeze_base trains only the bias layers, which Muon does not optimize: use --optimizer=adamw")
    if c.forget_weight < 0 or c.forget_batch_size < 1:
        raise UserError(f"forget_weight must be >= 0 (0 = off) and forget_batch_size >= 1, "
                        f"got {c.forget_weight} and {c.forget_batch_size}")
    if not 0 < c.forget_fraction <= 1:
        raise UserError(f"forget_fraction must be in (0, 1] (the share of people to forget), got {c.forget_fraction}")
    if c.retain_weight < 0 or (c.retain_weight and c.forget_fraction == 1):
        raise UserError(f"retain_weight must be >= 0 (0 = off) and needs a retain set (forget_fraction < 1), got "
                        f"retain_weight={c.retain_weight}, forget_fraction={c.forget_fraction}")
    if (c.forget_weight or c.retain_weight) and (c.freeze_base or not c.respect_doc_boundaries):
        raise UserError("forget_weight finds closed-book documents by their first token: keep "
                        "respect_doc_boundaries=True and freeze_base=False")
    if c.freeze_base and not c.respect_doc_boundaries:
        raise UserError("freeze_base splits documents at their recorded prefix: keep respect_doc_boundaries=True")
