"""compare.py: trains every run over seeds, reuses finished runs, and reports differences honestly."""

import json
import math
import os

import pytest

from helpers.config import UserError
from tools import compare


def write_config(tmp_path, facts_dir, seeds="(0, 1)"):
    common = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=4, eval_iters=2, device="cpu",
                  data_dir=facts_dir, max_iters=6, lr_decay_iters=6, eval_interval=3, warmup_iters=2)
    cfg = tmp_path / "compare_tiny.py"
    cfg.write_text(f"name = 'tiny'\nseeds = {seeds}\ncommon = {common!r}\n"
                   f"runs = {{'baseline': {{}}, 'shared_qk': dict(shared_qk=True), 'untied': dict(tie_dims=0)}}\n")
    return [str(cfg), f"--out_root={tmp_path}/runs"]


def test_compare_trains_every_run_and_seed_in_parallel_workers_then_reuses_them(facts_dir, tmp_path, capsys,
                                                                                monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the cores this sweep may use: 2 workers get 2 threads each
    args = write_config(tmp_path, facts_dir)
    compare.main(args + ["--only=('shared_qk',)", "--workers=2"])
    out = tmp_path / "runs" / "tiny"
    results = json.load(open(out / "results.json"))
    assert set(results["runs"]) == {"baseline", "shared_qk"} and results["baseline"] == "baseline"
    r = results["runs"]["shared_qk"]
    assert r["seeds"] == 2 and r["iters"] == 6 and len(r["val_losses"]) == 2 and r["ms_per_iter"] > 0
    assert r["keys"]["max_iters"] == 6 and r["keys"]["shared_qk"] is True  # each run's resolved keys
    assert r["params"] < results["runs"]["baseline"]["params"]
    assert r["diff"] == pytest.approx(r["val_loss"] - results["runs"]["baseline"]["val_loss"])
    table = open(out / "results.md").read()
    assert "| shared_qk | `shared_qk=True` |" in table and "`max_iters=6`" in table and "(baseline)" in table
    for png in ("val_loss.png", "position_loss.png"):
        assert open(out / png, "rb").read(4) == b"\x89PNG"
    # each run was a submitit job of its own (a separate process), whose result came back
    jobs = sorted((out / "submitit").glob("*_submitted.pkl"))
    assert len(jobs) == 4 and len(list((out / "submitit").glob("*_result.pkl"))) == 4
    assert len({p.name.split("_")[0] for p in jobs}) == 4  # 4 process ids
    import pickle
    command = pickle.load(open(jobs[0], "rb")).function.command[-1]
    assert command.startswith("OMP_NUM_THREADS=2 exec ") and "train.py" in command
    stamp = out / "shared_qk_s1" / "ckpt.pt"
    before = os.path.getmtime(stamp)
    capsys.readouterr()
    compare.main(args)  # same runs again, plus "untied": only the new one trains
    log = capsys.readouterr().out
    assert "reusing 4 finished run(s) of 6" in log and "training 2 run(s)" in log
    assert sorted(line.split(":")[0].split("/")[-1] for line in log.splitlines() if line.startswith("[")) == \
        ["untied_s0", "untied_s1"]
    assert os.path.getmtime(stamp) == before


def test_a_killed_worker_loses_only_its_run_which_is_trained_again_and_bad_runs_are_reported(
        facts_dir, tmp_path, capsys):
    import signal
    import threading

    args = write_config(tmp_path, facts_dir, seeds="(0,)")
    cfg = open(args[0]).read().replace("'untied': dict(tie_dims=0)", "'broken': dict(n_head=3)")
    open(args[0], "w").write(cfg)  # n_embd=32 does not split into 3 heads: train.py rejects it

    killed = []
    def kill_shared_qk_once():  # SIGKILL this test's first train.py of shared_qk_s0 as soon as it runs
        mine = str(tmp_path).encode()  # only a process of this test: never another job on the machine
        while not killed:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if (any(a.endswith(b"train.py") for a in cmd)
                        and any(a.endswith(b"shared_qk_s0") and mine in a for a in cmd)):
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(pid)
                    break

    threading.Thread(target=kill_shared_qk_once, daemon=True).start()
    with pytest.raises(UserError, match="1 run\\(s\\) failed.*broken_s0: error: every layer width"):
        compare.main(args + ["--workers=3"])
    log = capsys.readouterr().out
    assert killed and "shared_qk_s0 failed (killed by SIGKILL" in log and "trying again" in log
    assert "broken_s0 failed" not in log  # bad input is reported at once, not tried again
    results = json.load(open(tmp_path / "runs" / "tiny" / "results.json"))
    assert set(results["runs"]) == {"baseline", "shared_qk"} and results["runs"]["shared_qk"]["iters"] == 6


def test_significance_needs_a_difference_beyond_the_seed_noise():
    rows = lambda *losses: [[{"iter": 1, "val_loss": v, "val_bpb": v, "position_loss": [v]}] for v in losses]  # noqa: E731
    base, res = stats({"a": rows(1.00, 1.02, 0.98), "b": rows(1.50, 1.52, 1.48)})
    assert res["b"]["significant"] is True and res["b"]["diff"] == pytest.approx(0.5)
    base, res = stats({"a": rows(1.00, 1.10, 0.90), "b": rows(1.05, 1.15, 0.95)})
    assert res["b"]["significant"] is False
    base, res = stats({"a": rows(1.0), "b": rows(2.0)})
    assert res["b"]["significant"] is None and math.isnan(res["b"]["val_loss_std"])


def test_convergence_is_the_val_loss_change_over_the_last_fifth_of_the_iterations():
    rows = [{"iter": i, "val_loss": v} for i, v in ((0, 4.0), (400, 2.2), (800, 2.0), (1000, 1.9))]
    assert compare.late_change(rows) == pytest.approx(-0.1)
    assert compare.late_change(rows[:3]) is None  # no eval at 80% of 800 iterations


def stats(metrics, common=None):
    """compare.summarize without config files on disk."""
    import unittest.mock as mock

    c = compare.CompareConfig(name="x", runs={k: {} for k in metrics}, seeds=(0,), common=common or {})
    config = {"model": {"n_layer": 1, "n_head": 1, "n_embd": 8, "block_size": 4, "vocab_size": 10}}
    with mock.patch("builtins.open", mock.mock_open(read_data=json.dumps(config))):
        return compare.summarize(c, metrics)


def test_iterations_to_a_target_accuracy_per_seed_and_over_the_seeds_that_reached_it():
    rows = lambda *accs: [{"iter": 50 * i, "val_acc": a, "val_loss": 1.0, "val_bpb": 1.0, "position_loss": [1.0]}  # noqa: E731
                          for i, a in enumerate(accs)]
    _, res = stats({"a": [rows(0.1, 0.96), rows(0.1, 0.5, 0.95)], "b": [rows(0.1, 0.2), rows(0.1, 0.99)]},
                   common={"target_val_acc": 0.95})
    assert res["a"]["steps_to_target"] == [50, 100] and res["a"]["steps_to_target_mean"] == 75
    assert res["b"]["steps_to_target"] == [None, 50] and res["b"]["steps_to_target_mean"] == 50
    assert math.isnan(res["b"]["steps_to_target_std"]) and res["b"]["final_val_accs"] == [0.2, 0.99]


def test_unknown_runs_and_empty_configs_are_rejected(facts_dir, tmp_path):
    args = write_config(tmp_path, facts_dir)
    with pytest.raises(UserError, match="unknown run\\(s\\) nope"):
        compare.main(args + ["--only=('nope',)"])
    with pytest.raises(UserError, match="needs a name and runs"):
        compare.main([])
    with pytest.raises(UserError, match="executor must be 'local'"):
        compare.main(args + ["--executor=pbs"])
    with pytest.raises(UserError, match="partition, gpus are SLURM options: add --executor=slurm"):
        compare.main(args + ["--partition=gpu", "--gpus=1"])


def test_bench_mode_times_every_run(facts_dir, tmp_path):
    args = write_config(tmp_path, facts_dir)
    compare.main(args + ["--bench=True", "--only=('shared_qk',)"])
    table = open(tmp_path / "runs" / "tiny" / "bench.md").read()
    rows = [line.split("|") for line in table.splitlines() if line.startswith(("| baseline |", "| shared_qk |"))]
    assert len(rows) == 2 and all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)  # ms/iter, ratio


def test_a_run_is_reused_only_while_its_arguments_and_inputs_are_unchanged(tmp_path, monkeypatch, capsys):
    from helpers import launch

    calls = []
    def fake_run(cmd, **kw):  # a train.py that finishes at once
        calls.append(cmd[2:])
        return launch.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    base, primed = str(tmp_path / "base"), str(tmp_path / "primed")
    launch.train_or_reuse(base, ["--max_iters=5"])
    launch.train_or_reuse(primed, ["--freeze_base=True"], inputs=[base])
    launch.train_or_reuse(base, ["--max_iters=5"])
    launch.train_or_reuse(primed, ["--freeze_base=True"], inputs=[base])
    assert len(calls) == 2 and capsys.readouterr().out.count("reusing") == 2
    launch.train_or_reuse(base, ["--max_iters=6"])  # the base is trained again...
    launch.train_or_reuse(primed, ["--freeze_base=True"], inputs=[base])  # ...so what starts from it is too
    assert calls[-2:] == [["--max_iters=6", f"--out_dir={base}", "--overwrite=True"],
                          ["--freeze_base=True", f"--out_dir={primed}", "--overwrite=True"]]


def test_two_sweeps_over_one_folder_never_train_a_run_twice(tmp_path, monkeypatch, capsys):
    import sys
    import threading

    from helpers import launch

    write = ("import json, sys; open(sys.argv[1] + '/metrics.jsonl', 'w').write(json.dumps("
             "{'iter': 1, 'val_loss': 1.0}) + '\\n')")  # a train.py that finishes at once
    monkeypatch.setattr(launch, "train_command", lambda args: [sys.executable, "-c", write, args[-1].split("=")[1]])
    a, b = str(tmp_path / "a"), str(tmp_path / "b")

    def other_sweep_trains(out_dir, secs):  # holds out_dir's lock, then finishes the run and lets go
        held = launch.claim(out_dir)
        assert held is not None and launch.claim(out_dir) is None
        threading.Timer(secs, lambda: (launch.record(out_dir, ["--x=1", f"--out_dir={out_dir}"], (), 7.0),
                                       held.close())).start()

    other_sweep_trains(a, 1.5)
    seconds, failed = launch.train_in_workers({a: ["--x=1"], b: ["--x=1"]}, 1, folder=str(tmp_path / "submitit"))
    log = capsys.readouterr().out
    assert f"waiting for {a}: another process is training it" in log and f"reusing {a}" in log
    assert seconds[a] == 7.0 and seconds[b] > 0 and not failed
    assert not os.path.exists(os.path.join(a, "train.log")) and os.path.exists(os.path.join(b, "train.log"))

    calls = []
    monkeypatch.setattr(launch.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    c = str(tmp_path / "c")
    other_sweep_trains(c, 0.5)
    assert launch.train_or_reuse(c, ["--x=1"]) == 7.0 and calls == []  # waited for it, then reused it
    assert f"waiting for {c}" in capsys.readouterr().out
