"""The warmup-stable-decay schedule (lr_schedule="wsd"): its shape, and cooldown branches that are exact."""

import json
import math
import os

import pytest
import torch

import train
from conftest import train_args
from helpers.config import TrainConfig, UserError, check_train_config

WSD = ["--lr_schedule=wsd", "--cooldown_frac=0.2", "--eval_interval=4", "--learning_rate=3e-3", "--min_lr=1e-4"]


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize("shape", ["1-sqrt", "linear"])
def test_wsd_warms_up_stays_flat_then_cools_down_to_min_lr_at_max_iters(shape):
    c = TrainConfig(lr_schedule="wsd", learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=100,
                    cooldown_frac=0.2, cooldown_shape=shape, lr_decay_iters=30)  # (the cosine's key is ignored)
    lrs = [train.get_lr(i, c) for i in range(101)]
    assert lrs[0] < lrs[5] < lrs[9] < 1.0  # warmup
    assert all(lr == 1.0 for lr in lrs[10:81])  # flat through iteration 80, where the cooldown starts at full rate
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # then falls every step
    assert lrs[100] == pytest.approx(0.1)  # min_lr at max_iters
    half = 1 - math.sqrt(0.5) if shape == "1-sqrt" else 0.5  # halfway through the cooldown
    assert lrs[90] == pytest.approx(0.1 + 0.9 * half)


def test_bad_wsd_keys_are_refused_in_one_line():
    for keys, said in [(dict(lr_schedule="step"), "lr_schedule must be"),
                       (dict(cooldown_shape="sqrt"), "cooldown_shape must be"),
                       (dict(cooldown_frac=0.0), r"cooldown_frac must be in \(0, 1\]"),
                       (dict(lr_schedule="wsd", max_iters=100, warmup_iters=90), "runs past the cooldown's start"),
                       (dict(lr_schedule="wsd", max_iters=100, save_at=(50, 81)), "save_at 81 is not in 1..80"),
                       (dict(max_iters=100, save_at=(0,)), "save_at 0 is not in 1..100"),
                       (dict(resume_from="out/ckpt_8.pt"), "add --init_from=resume")]:
        with pytest.raises(UserError, match=said):
            check_train_config(TrainConfig(**keys))
    check_train_config(TrainConfig(lr_schedule="wsd", max_iters=100, save_at=(80,)))  # the last constant step


def test_a_cooldown_branch_is_the_shorter_run_to_the_bit(facts_dir, tmp_path):
    """A 40-step wsd run saves ckpt_16.pt in its constant phase; a branch from it to 20 steps (cooldown from 16)
    ends with the weights and losses of a 20-step wsd run from scratch, and its metrics hold the trunk's rows."""
    trunk, branch, scratch = (str(tmp_path / n) for n in ("trunk", "branch", "scratch"))
    train.main(train_args(facts_dir, trunk, *WSD, "--max_iters=40", "--save_at=(16,)"))
    train.main(train_args(facts_dir, branch, *WSD, "--max_iters=20", "--init_from=resume",
                          f"--resume_from={trunk}/ckpt_16.pt", "--always_save_checkpoint=True"))
    train.main(train_args(facts_dir, scratch, *WSD, "--max_iters=20", "--always_save_checkpoint=True"))
    assert torch.load(f"{trunk}/ckpt_16.pt", weights_only=True)["iter_num"] == 16
    a, b = weights(f"{branch}/ckpt.pt"), weights(f"{scratch}/ckpt.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rb, rs = rows(branch), rows(scratch)
    assert [r["iter"] for r in rb] == [0, 4, 8, 12, 16, 20]
    assert [(r["val_loss"], r["train_loss"], r["lr"]) for r in rb] == [(r["val_loss"], r["train_loss"], r["lr"]) for r in rs]
    assert rows(trunk)[-1]["val_loss"] != rs[-1]["val_loss"]  # (the trunk itself went on: another model)


def test_a_branch_stopped_in_its_cooldown_resumes_exactly(facts_dir, tmp_path, monkeypatch):
    """Ctrl-C in a branch's cooldown after its checkpoint at 24, then init_from=resume (its own ckpt.pt): the same
    weights and losses as the branch run straight through."""
    trunk, straight, split = (str(tmp_path / n) for n in ("trunk", "straight", "split"))
    train.main(train_args(facts_dir, trunk, *WSD, "--max_iters=60", "--save_at=(16,)"))
    branch = [*WSD, "--max_iters=30", "--always_save_checkpoint=True"]  # cooldown from 24
    train.main(train_args(facts_dir, straight, *branch, "--init_from=resume", f"--resume_from={trunk}/ckpt_16.pt"))
    step, calls = train.train_step, []

    def stopping_step(*args, **kwargs):  # Ctrl-C on the 11th step of the branch (its 27th)
        calls.append(1)
        if len(calls) == 11:
            raise KeyboardInterrupt
        return step(*args, **kwargs)
    monkeypatch.setattr(train, "train_step", stopping_step)
    with pytest.raises(UserError, match="ckpt.pt holds iteration 24"):
        train.main(train_args(facts_dir, split, *branch, "--init_from=resume", f"--resume_from={trunk}/ckpt_16.pt"))
    monkeypatch.setattr(train, "train_step", step)
    train.main(train_args(facts_dir, split, *branch, "--init_from=resume"))
    a, b = weights(f"{straight}/ckpt.pt"), weights(f"{split}/ckpt.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val_loss"] for r in rows(straight)] == [r["val_loss"] for r in rows(split)]
