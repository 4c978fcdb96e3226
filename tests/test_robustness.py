"""A run that diverges, a torn metrics line, a full disk: the run stops or warns in one line, and what
was written before (the last good checkpoint) stays as it was."""

import errno
import json
import math
import os
import re
import shutil

import pytest
import torch
from conftest import train_args

import model as model_module
import train
from helpers.checkpoint import read_metrics, save_checkpoint
from helpers.config import UserError, main_guard


def strict_rows(out_dir):
    """metrics.jsonl parsed as strict JSON: a bare NaN or Infinity fails."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line, parse_constant=refuse) for line in f]


def copy_run(tiny_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    return str(out)


def exit_of(main, capsys):
    """(exit status, stderr) of main() run as the scripts run it (main_guard)."""
    with pytest.raises(SystemExit) as e:
        main_guard(main)
    return e.value.code, capsys.readouterr().err


# --- divergence ---

def test_a_diverging_resume_stops_non_zero_and_keeps_the_good_checkpoint(tiny_run, facts_dir, tmp_path, capsys):
    out = copy_run(tiny_run, tmp_path)
    before = open(os.path.join(out, "ckpt.pt"), "rb").read()
    args = train_args(facts_dir, out, "--init_from=resume", "--max_iters=60", "--eval_interval=5",
                      "--learning_rate=1e6", "--warmup_iters=0", "--always_save_checkpoint=True")
    code, err = exit_of(lambda: train.main(args), capsys)
    assert code != 0
    assert err.strip().splitlines() == [err.strip()]  # one line
    at = re.search(r"the run diverged: the training loss or gradient is not finite at iteration (\d+) ", err)
    assert at and 30 < int(at.group(1)) < 35  # the iteration, before the next eval (35) would have saved
    assert "lower --learning_rate (now 1e+06)" in err and "--grad_clip" in err
    assert open(os.path.join(out, "ckpt.pt"), "rb").read() == before
    assert [r["iter"] for r in strict_rows(out)] == [0, 15, 30]


def nan_at_training_forward(monkeypatch, which):
    """Make the which-th training forward pass (1-based) return a NaN loss, as a diverging step would."""
    forward, calls = model_module.GPT.forward, [0]

    def patched(self, *args, **kwargs):
        logits, loss = forward(self, *args, **kwargs)
        if self.training:
            calls[0] += 1
            if calls[0] == which:
                loss = loss * float("nan")
        return logits, loss
    monkeypatch.setattr(model_module.GPT, "forward", patched)


def test_skip_nonfinite_skips_the_update_of_a_bad_step_and_goes_on(facts_dir, tmp_path, monkeypatch, capsys):
    nan_at_training_forward(monkeypatch, 3)
    out = str(tmp_path / "skip")
    train.main(train_args(facts_dir, out, "--max_iters=6", "--eval_interval=6", "--skip_nonfinite=1"))
    assert "iter 3: loss or gradient not finite (loss nan): update skipped (1 of --skip_nonfinite=1)" in \
        capsys.readouterr().out
    ckpt = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    assert ckpt["iter_num"] == 6 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    nan_at_training_forward(monkeypatch, 3)
    with pytest.raises(UserError, match="not finite at iteration 3 "):  # the default: stop at the first
        train.main(train_args(facts_dir, str(tmp_path / "stop"), "--max_iters=6", "--eval_interval=6"))
    assert not os.path.exists(tmp_path / "stop" / "ckpt.pt")


def test_a_non_finite_eval_is_never_best_nor_saved_and_is_written_as_null(facts_dir, tmp_path, monkeypatch):
    evaluate = train.evaluate

    def nan_val(*args, **kwargs):
        m = evaluate(*args, **kwargs)
        return {**m, "val_loss": math.nan, "val_bpb": math.inf}
    monkeypatch.setattr(train, "evaluate", nan_val)
    out = str(tmp_path / "o")
    train.main(train_args(facts_dir, out, "--max_iters=4", "--eval_interval=4", "--always_save_checkpoint=True"))
    assert not os.path.exists(os.path.join(out, "ckpt.pt"))
    assert [(r["val_loss"], r["val_bpb"]) for r in strict_rows(out)] == [(None, None), (None, None)]
    train.main([f"--out_dir={out}", "--plot_only=True"])  # the plots take the nulls


def test_non_finite_weights_are_never_saved(tmp_path):
    m = model_module.GPT(model_module.GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=10))
    with torch.no_grad():
        m.lm_head.weight[0, 0] = math.inf
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"the last good one")
    with pytest.raises(UserError, match="weights are not finite"):
        save_checkpoint(str(path), m, None, {"model": {}}, {}, 1, 1.0, torch.Generator(), "cpu")
    assert path.read_bytes() == b"the last good one"


# --- metrics.jsonl ---

def test_a_torn_last_metrics_line_warns_and_resume_repairs_it(tiny_run, facts_dir, tmp_path, capsys):
    from tools import analyze

    out = copy_run(tiny_run, tmp_path)
    path = os.path.join(out, "metrics.jsonl")
    good = open(path).read()
    with open(path, "a") as f:
        f.write('{"iter": 45, "train_loss": 2.1')  # an append cut short
    warning = f"warning: ignoring the torn last line of {path} (a write that was cut short)"
    assert [r["iter"] for r in read_metrics(out)] == [0, 15, 30]
    assert capsys.readouterr().err.strip() == warning
    train.main([f"--out_dir={out}", "--plot_only=True"])
    analyze.main(["positions", f"--out_dir={out}", f"--plot_dir={tmp_path}/p"])
    assert warning in capsys.readouterr().err
    train.main(train_args(facts_dir, out, "--init_from=resume", "--max_iters=30"))  # rewrites it without the line
    assert open(path).read() == good
    with open(path, "w") as f:
        f.write(good.replace("\n", "\nnot json\n", 1))
    with pytest.raises(UserError, match=r"line 2 of .*metrics.jsonl is not JSON: delete that line"):
        read_metrics(out)


# --- full disk, permissions, leftovers of a killed save ---

def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(tiny_run, facts_dir, tmp_path,
                                                                              monkeypatch, capsys):
    out = copy_run(tiny_run, tmp_path)
    before = open(os.path.join(out, "ckpt.pt"), "rb").read()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"part of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, "save", full_disk)
    args = train_args(facts_dir, out, "--init_from=resume", "--max_iters=35", "--eval_interval=5")
    code, err = exit_of(lambda: train.main(args), capsys)
    path = os.path.join(out, "ckpt.pt")
    assert code == 2 and err == (f"error: no space left on device while writing {path}: free some space and run "
                                 f"again; the ckpt.pt there before is untouched\n")
    assert open(path, "rb").read() == before
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_temp_files_of_a_killed_save_are_removed_at_the_next_start(tiny_run, facts_dir, tmp_path, capsys):
    out = copy_run(tiny_run, tmp_path)
    for name in ("ckpt.pt.tmp", "config.json.tmp"):
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"half")
    train.main(train_args(facts_dir, out, "--init_from=resume", "--max_iters=30"))
    assert f"removed {os.path.join(out, 'ckpt.pt.tmp')}, left by an interrupted save" in capsys.readouterr().out
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


# --- tools ---

def test_attention_on_a_shared_block_model_draws_every_layer(facts_dir, tmp_path):
    from tools import analyze

    out = str(tmp_path / "shared")
    train.main(train_args(facts_dir, out, "--n_layer=3", "--n_shared_blocks=1", "--max_iters=2", "--eval_interval=2"))
    patterns = []
    layer_activations = analyze.layer_activations

    def spy(*args):
        cache = layer_activations(*args)
        patterns.extend(cache[f"layer {i} attn.hook_pattern"] for i in range(3))
        return cache
    analyze.layer_activations = spy
    try:
        analyze.main(["attention", f"--out_dir={out}", f"--plot_dir={tmp_path}/p", "--text=Mibe lives in Tulvek."])
    finally:
        analyze.layer_activations = layer_activations
    assert os.listdir(tmp_path / "p") == ["attention.png"]
    # one block, three layers: the same weights read three different residual streams
    assert not torch.equal(patterns[0], patterns[1]) and not torch.equal(patterns[1], patterns[2])


def test_a_full_disk_while_appending_metrics_is_one_line(facts_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "o")
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and mode == "a":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)
    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(UserError, match=r"^no space left on device while writing .*metrics.jsonl: free some space"):
        train.main(train_args(facts_dir, out, "--max_iters=2", "--eval_interval=2"))


def test_prepare_records_the_largest_token_id(facts_dir):
    import numpy as np

    meta = json.load(open(os.path.join(facts_dir, "meta.json")))
    ids = [np.fromfile(os.path.join(facts_dir, f"{s}.bin"), dtype=meta["dtype"]) for s in ("train", "val")]
    assert meta["max_token_id"] == max(int(a.max()) for a in ids) < meta["vocab_size"]
