"""compare.py --budgets: one WSD run per run and seed, a cooldown branch per shorter budget, multipliers."""

import json

import pytest

import train
from helpers.config import UserError
from tools import compare

COMMON = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=4, eval_iters=2, device="cpu",
              eval_interval=4, warmup_iters=2, learning_rate=3e-3, min_lr=1e-4)


def write_config(tmp_path, facts_dir):
    cfg = tmp_path / "compare_tiny.py"
    cfg.write_text(f"name = 'tiny'\nseeds = (0,)\ncommon = {dict(COMMON, data_dir=facts_dir)!r}\n"
                   f"runs = {{'baseline': {{}}, 'shared_qk': dict(shared_qk=True)}}\n")
    return [str(cfg), f"--out_root={tmp_path}/runs"]


def test_budget_curves_branch_each_shorter_budget_off_one_wsd_run_and_reuse_the_pieces(facts_dir, tmp_path, capsys):
    args = write_config(tmp_path, facts_dir) + ["--budgets=10,20", "--workers=2"]  # 2 runs x 1 seed x 2 budgets
    compare.main(args)
    out = tmp_path / "runs" / "tiny"
    results = json.load(open(out / "budgets.json"))
    assert results["budgets"] == [10, 20] and results["baseline"] == "baseline"
    r = results["runs"]["shared_qk"]
    assert len(r["val_losses"]) == 1 and len(r["val_losses"][0]) == 2  # seeds x budgets
    assert r["steps"] == 20 + 2 and r["cosine_steps"] == 30  # the trunk, then a 2-step cooldown
    m = r["budgets"]["10"]["multiplier"]
    assert m["low"] <= m["value"] <= m["high"] and m["mark"] in ("", "<", ">")
    assert r["budgets"]["20"]["diff"] == pytest.approx(r["budgets"]["20"]["val_loss"]
                                                       - results["runs"]["baseline"]["budgets"]["20"]["val_loss"])
    # the branch to 10 is the WSD run to 10 from scratch, to the bit
    scratch = str(tmp_path / "scratch")
    train.main([f"--{k}={v}" for k, v in dict(COMMON, data_dir=facts_dir, seed=0, lr_schedule="wsd").items()]
               + ["--max_iters=10", f"--out_dir={scratch}"])
    assert results["runs"]["baseline"]["val_losses"][0][0] == json.loads(open(f"{scratch}/metrics.jsonl")
                                                                          .readlines()[-1])["val_loss"]
    table = open(out / "budgets.md").read()
    assert "| run | 10 | 20 |" in table and "| shared_qk | - | - |" in table  # (no bench.json yet)
    for png in ("budget_loss.png", "multiplier.png"):
        assert open(out / png, "rb").read(4) == b"\x89PNG"
    capsys.readouterr()
    compare.main(args)  # everything is reused: 2 trunks, then 2 branches
    log = capsys.readouterr().out
    assert log.count("reusing 2 finished run(s) of 2") == 2 and "at once" not in log


def test_bad_budgets_are_refused_before_anything_trains(facts_dir, tmp_path):
    args = write_config(tmp_path, facts_dir)
    for budgets, said in [("(20,10)", "two or more increasing"), ("(10,)", "two or more increasing"),
                          ("(1,20)", "cooldown of budget 1 starts at iteration 1, before the warmup")]:
        with pytest.raises(UserError, match=said):
            compare.main(args + [f"--budgets={budgets}"])
    assert not (tmp_path / "runs").exists()
