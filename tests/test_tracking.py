"""Experiment tracking (helpers/tracking.py): TensorBoard's own reader sees metrics.jsonl's rows, a missing
tracker is one line before anything is written, and compare.py groups a sweep's runs."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, train_args

import train
from helpers.checkpoint import read_metrics
from helpers.config import TrainConfig, UserError, check_train_config, configure
from helpers.tracking import run_names, scalars
from tools import compare


def tensorboard_scalars(out_dir):
    """{tag: [(step, value), ...]} as TensorBoard reads out_dir/tensorboard (its EventAccumulator)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(out_dir, "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}, acc.Tags()["tensors"]


def assert_same_as_metrics(out_dir):
    rows = read_metrics(out_dir)
    logged, _ = tensorboard_scalars(out_dir)
    assert set(logged) == set().union(*(scalars(r) for r in rows))  # every number of a row, nothing else
    for tag, points in logged.items():
        expected = [(r["iter"], r[tag]) for r in rows if scalars(r).get(tag) is not None]
        assert [s for s, _ in points] == [s for s, _ in expected], tag  # one point per row, at its iter
        assert [v for _, v in points] == pytest.approx([v for _, v in expected], rel=1e-6), tag  # (float32)


def test_tensorboard_holds_every_metrics_row_and_the_config_also_after_resume_and_overwrite(facts_dir, tmp_path):
    out = str(tmp_path / "sweep" / "run")
    args = train_args(facts_dir, out, "--log_to=tensorboard", "--eval_interval=2", "--always_save_checkpoint=True")
    train.main(args + ["--max_iters=4"])
    _, tensors = tensorboard_scalars(out)
    assert "config/text_summary" in tensors
    assert {"val_loss", "lr", "icl_score", "tokens"} <= set(tensorboard_scalars(out)[0])
    assert "position_loss" not in tensorboard_scalars(out)[0]  # lists stay in metrics.jsonl and its plots
    train.main(args + ["--max_iters=6", "--init_from=resume"])  # continues the same curves
    assert [r["iter"] for r in read_metrics(out)] == [0, 2, 4, 6]
    assert_same_as_metrics(out)
    train.main(args + ["--max_iters=2", "--overwrite=True"])  # a fresh run: fresh curves, as metrics.jsonl
    assert [r["iter"] for r in read_metrics(out)] == [0, 2]
    assert_same_as_metrics(out)


@pytest.mark.parametrize("tracker", ["wandb", "trackio"])
def test_a_missing_tracker_is_one_line_naming_the_pip_command_before_anything_is_written(tracker, facts_dir,
                                                                                          tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, tracker, None)  # not installed, whether or not it is here
    out = tmp_path / "out"
    with pytest.raises(UserError, match=f"pip install {tracker}$") as e:
        train.main(train_args(facts_dir, str(out), f"--log_to={tracker}", "--max_iters=2"))
    assert "\n" not in str(e.value) and not out.exists()


def test_an_unknown_tracker_lists_the_known_ones():
    with pytest.raises(UserError, match="'wandb', 'trackio', 'tensorboard'; got 'mlflow'"):
        check_train_config(TrainConfig(log_to="mlflow"))


def test_runs_are_named_by_their_folders_unless_given():
    assert run_names(TrainConfig(out_dir="out-compare/sweep/base_s0")) == ("sweep", "base_s0")
    assert run_names(TrainConfig(out_dir="out-facts/")) == ("small-gpt-lab", "out-facts")
    assert run_names(TrainConfig(out_dir="a/b", log_project="p", log_run_name="r")) == ("p", "r")


def test_trackio_local_store_holds_every_metrics_row_the_config_and_the_group(facts_dir, tmp_path):
    """trackio itself (local-first: a SQLite store under TRACKIO_DIR, no network) gets each row at its iter.
    Run in subprocesses: trackio reads TRACKIO_DIR when it is imported. (wandb shares this code path.)"""
    out, store = tmp_path / "sweep" / "base_s0", tmp_path / "trackio"
    env = {**os.environ, "TRACKIO_DIR": str(store), "OMP_NUM_THREADS": "1"}
    args = train_args(facts_dir, str(out), "--log_to=trackio", "--log_group=base", "--eval_interval=2", "--max_iters=4")
    subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args], env=env, check=True, capture_output=True)
    read = ("import json; from trackio.sqlite_storage import SQLiteStorage as S; "
            "print(json.dumps([S.get_logs('sweep', 'base_s0'), S.get_run_config('sweep', 'base_s0')], default=str))")
    logs, config = json.loads(subprocess.run([sys.executable, "-c", read], env=env, check=True,
                                                     capture_output=True, text=True).stdout)
    rows = read_metrics(str(out))
    assert [entry["step"] for entry in logs] == [r["iter"] for r in rows] == [0, 2, 4]
    for entry, row in zip(logs, rows):
        assert {k: entry[k] for k in scalars(row)} == pytest.approx(scalars(row))  # every number, as written
        assert "position_loss" not in entry  # lists stay in metrics.jsonl and its plots
    assert config["_Group"] == "base" and config["train"]["max_iters"] == 4 and config["model"]["n_layer"] == 2


def test_compare_names_the_sweep_as_project_and_each_variant_as_group_only_when_tracking():
    c = compare.CompareConfig(name="sweep", common={"max_iters": 10}, runs={"base": {}, "wide": {"n_embd": 64}})
    assert compare.run_args(c, "wide", 1) == ["--max_iters=10", "--n_embd=64", "--seed=1"]  # (finished runs reused)
    c.log_to = "tensorboard"
    for run in c.runs:
        (cfg, _), _ = configure([TrainConfig(), train.MAIN_JOB_MODEL], compare.run_args(c, run, 1))
        assert (cfg.log_to, cfg.log_project, cfg.log_group) == ("tensorboard", "sweep", run)
    c.log_to, c.common["log_to"], c.runs["wide"]["log_group"] = "", "wandb", "mine"  # a config's own keys win
    assert "--log_to=wandb" in compare.run_args(c, "base", 0) and "--log_group=mine" in compare.run_args(c, "wide", 0)


def test_compare_refuses_a_missing_tracker_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(UserError, match="pip install wandb$"):
        compare.main(["--name=sweep", "--runs={'base': {}}", f"--out_root={tmp_path / 'out'}", "--log_to=wandb"])
    assert not (tmp_path / "out").exists()
