"""Config parsing: nanoGPT's `config/file.py --key=value` habit, typed and checked."""

import glob
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from helpers.config import MAIN_JOB_MODEL, Interrupted, TrainConfig, UserError, configure, main_guard
from model import GPTConfig


def parse(*argv):
    (train, model), given = configure([TrainConfig(), MAIN_JOB_MODEL], list(argv))
    return train, model, given


def test_cli_values_are_typed_and_routed_to_their_dataclass():
    train, model, given = parse("--n_layer=3", "--learning_rate=3e-4", "--compile=True", "--out_dir=runs/a")
    assert model.n_layer == 3 and train.learning_rate == 3e-4 and train.compile is True
    assert train.out_dir == "runs/a" and given == {"n_layer", "learning_rate", "compile", "out_dir"}


def test_int_is_accepted_for_a_float_key():
    train, _, _ = parse("--learning_rate=1")
    assert train.learning_rate == 1.0 and isinstance(train.learning_rate, float)


def test_str_keys_take_the_raw_text():
    train, _, _ = parse("--out_dir=123", "--dataset=None")
    assert train.out_dir == "123" and train.dataset == "None"


def test_unknown_key_names_the_closest_valid_key():
    with pytest.raises(UserError, match="unknown config key 'learing_rate'; did you mean learning_rate"):
        parse("--learing_rate=1e-3")
    with pytest.raises(UserError, match="see --help"):
        parse("--zzzzzz=1")


@pytest.mark.parametrize("arg, msg", [
    ("--n_layer=2.5", "n_layer must be int"),
    ("--n_layer=four", "n_layer must be int"),
    ("--compile=1", "compile must be bool"),
    ("--learning_rate=fast", "learning_rate must be float"),
    ("--n_layer", "expected --key=value"),
])
def test_values_of_the_wrong_type_are_rejected(arg, msg):
    with pytest.raises(UserError, match=msg):
        parse(arg)


def test_config_file_then_cli_overrides(tmp_path):
    f = tmp_path / "exp.py"
    f.write_text("import math\nn_layer = 6\nlearning_rate = 1e-3\n_private = 5\nbatch_size = 2 ** 4\n")
    train, model, _ = parse(str(f), "--n_layer=2")
    assert model.n_layer == 2 and train.learning_rate == 1e-3 and train.batch_size == 16


def test_config_file_with_a_typo_or_bad_type_fails(tmp_path):
    f = tmp_path / "exp.py"
    f.write_text("n_layers = 6\n")
    with pytest.raises(UserError, match="did you mean n_layer"):
        parse(str(f))
    f.write_text("dropout = 'lots'\n")
    with pytest.raises(UserError, match="dropout must be float"):
        parse(str(f))
    with pytest.raises(UserError, match="not found"):
        parse(str(tmp_path / "missing.py"))


def test_model_checks_run_after_overrides():
    with pytest.raises(UserError, match="divisible"):
        parse("--n_embd=100", "--n_head=3")


def test_shipped_nanogpt_recipe_has_nanogpts_values():
    train, model, _ = parse("config/train_shakespeare_char.py")
    assert (train.out_dir, train.eval_interval, train.eval_iters, train.log_interval) == ("out-shakespeare-char", 250, 200, 10)
    assert (train.always_save_checkpoint, train.dataset, train.gradient_accumulation_steps) == (False, "shakespeare_char", 1)
    assert (train.batch_size, model.block_size, model.n_layer, model.n_head, model.n_embd) == (64, 256, 6, 6, 384)
    assert (model.dropout, model.bias, train.learning_rate, train.max_iters, train.lr_decay_iters) == (0.2, False, 1e-3, 5000, 5000)
    assert (train.min_lr, train.beta1, train.beta2, train.warmup_iters, train.weight_decay, train.grad_clip) == \
        (1e-4, 0.9, 0.99, 100, 0.1, 1.0)


CONFIG = os.path.join(ROOT, "config")
TRAIN_CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG, "*.py")) if not p.endswith("__init__.py"))
SWEEP_CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG, "sweeps", "*.py")) if not p.endswith("__init__.py"))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=os.path.basename)
def test_every_config_in_config_runs_with_train_py(path):
    parse(path)  # train.py's own parser: a sweep config here fails on its first unknown key (name, runs, ...)


def sweep_tool(path):
    """The tool a sweep config names in its own usage line (`python tools/compare.py config/sweeps/x.py`)."""
    m = re.search(r"python tools/(\w+)\.py config/sweeps/" + re.escape(os.path.basename(path)), open(path).read())
    assert m, f"{path} quotes no `python tools/<tool>.py config/sweeps/{os.path.basename(path)}` line"
    return m.group(1)


@pytest.mark.parametrize("path", SWEEP_CONFIGS, ids=os.path.basename)
def test_every_sweep_config_loads_in_its_tool_and_its_runs_parse_in_train_py(path):
    from tools import compare, induction, knowledge, prime

    loader = {"compare": compare.CompareConfig, "induction": induction.InductionConfig,
              "knowledge": knowledge.KnowledgeConfig, "prime": prime.PrimeConfig}[sweep_tool(path)]
    (c,), _ = configure([loader()], [path])
    if loader in (compare.CompareConfig, induction.InductionConfig):  # every run's keys must parse
        for run in c.runs.values():
            parse(*(f"--{k}={v}" for k, v in {**c.common, **run}.items()))
    elif loader is knowledge.KnowledgeConfig:  # every run's train.py keys
        for run in (c.base, c.forgetting, c.priming, c.lora):
            parse(*(f"--{k}={v}" for k, v in run.items()))
    else:  # a prime.py config: the base's keys, and every bias-layer run's
        for run in [c.base, *({**c.priming, **v} for v in [{}, *c.variations.values()])]:
            parse(*(f"--{k}={v}" for k, v in run.items()))


def test_help_lists_every_key_with_default_and_description():
    out = subprocess.run([sys.executable, "train.py", "--help"], capture_output=True, text=True, check=True).stdout
    keys = list(TrainConfig.__dataclass_fields__) + list(GPTConfig.__dataclass_fields__)
    for key in keys:
        line = next(line for line in out.splitlines() if line.strip().startswith(f"--{key} "))
        assert len(line.split()) >= 3, line  # key, default, description
    assert "warmup steps" in out and "width of the residual stream" in out
    assert "\nusage: train.py [config/file.py ...] [--key=value ...]\n" in out  # the program, as typed


def test_help_into_a_reader_that_stopped_early_ends_without_a_traceback():
    read, write = os.pipe()
    os.close(read)  # `python train.py --help | head` once head has its lines: every write fails (EPIPE)
    r = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, stdout=write, stderr=subprocess.PIPE,
                       text=True)
    os.close(write)
    assert (r.returncode, r.stderr) == (1, "")  # the Python docs' SIGPIPE advice: quiet, status 1


def test_cli_error_is_one_line_with_nonzero_exit():
    r = subprocess.run([sys.executable, "train.py", "--n_layr=2"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: unknown config key 'n_layr'; did you mean n_layer?"


def test_main_guard_gives_ctrl_c_one_line_and_status_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    def said_what_was_kept():
        raise Interrupted("interrupted at iteration 3: no checkpoint of this run yet")
    for main, line in ((interrupted, "error: interrupted (Ctrl-C)"),
                       (said_what_was_kept, "error: interrupted at iteration 3: no checkpoint of this run yet")):
        with pytest.raises(SystemExit) as e:
            main_guard(main)
        assert e.value.code == 130
        assert capsys.readouterr().err == line + "\n"
    with pytest.raises(SystemExit) as e:
        main_guard(lambda: (_ for _ in ()).throw(UserError("bad")))
    assert e.value.code == 2
