"""Modular addition (prepare/modular.py), answer-only loss and accuracy, full-batch training, and
Tangent Descent (grad_projection="tangent", ⊥Grad)."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, straight_and_resumed

import train
from helpers.checkpoint import read_metrics
from helpers.config import UserError
from helpers.data import Batches, load_meta
from helpers.evaluate import evaluate
from helpers.optim import project_tangent
from model import GPT, GPTConfig
from prepare import modular

P = 23  # small enough that a full batch (159 equations) takes milliseconds


@pytest.fixture(scope="module")
def modular_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data") / "modular")
    modular.main([f"--p={P}", f"--out={out}"])
    return out


def equations(data_dir, split):
    """[(a, b, c)] of a split, read back from its bin and document index."""
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    ids = np.fromfile(os.path.join(data_dir, f"{split}.bin"), dtype=meta["dtype"])
    docs = np.load(os.path.join(data_dir, f"{split}.docs.npy"))
    assert (docs[:, 1] == 3).all() and (np.diff(docs[:, 0]) == 4).all()  # prefix `a b =`, 4 tokens each
    words = meta["words"]
    out = []
    for start in docs[:, 0]:
        a, b, eq, c = (words[i] for i in ids[start:start + 4])
        assert eq == "="
        out.append((int(a), int(b), int(c)))
    return out


def test_every_pair_once_with_its_answer_and_a_seeded_30_percent_split(modular_dir, tmp_path):
    train_eqs, val_eqs = equations(modular_dir, "train"), equations(modular_dir, "val")
    pairs = [(a, b) for a, b, _ in train_eqs + val_eqs]
    assert sorted(pairs) == [(a, b) for a in range(P) for b in range(P)]  # complete, none twice
    assert len(train_eqs) == round(0.3 * P * P)
    assert all(c == (a + b) % P for a, b, c in train_eqs + val_eqs)
    meta = json.load(open(os.path.join(modular_dir, "meta.json")))
    assert meta["vocab_size"] == P + 1 and meta["eot_id"] is None
    again, other = str(tmp_path / "again"), str(tmp_path / "other")
    modular.main([f"--p={P}", f"--out={again}"])
    modular.main([f"--p={P}", f"--out={other}", "--seed=1"])
    for f in ("train.bin", "val.bin", "train.docs.npy", "val.docs.npy"):
        assert open(os.path.join(again, f), "rb").read() == open(os.path.join(modular_dir, f), "rb").read()
    assert equations(other, "train") != train_eqs  # the seed decides the split


def batches(data_dir, batch_size=8):
    meta = load_meta(data_dir, "modular")
    return Batches(data_dir, meta, 3, batch_size, "cpu", prefix_lm=True)


def test_the_loss_is_on_the_answer_token_only(modular_dir):
    b = batches(modular_dir)
    x, y, prefix_len = b.whole("train", torch.Generator())
    assert x.shape == (round(0.3 * P * P), 3) and (prefix_len == 3).all()
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=3, vocab_size=P + 1, n_layer=1, n_head=2, n_embd=16, prefix_lm=True))
    logits, loss = model(x, y, prefix_len=prefix_len)
    answers = torch.tensor([c for _, _, c in equations(modular_dir, "train")])
    assert torch.equal(y[:, 2], answers)
    assert loss.item() == pytest.approx(F.cross_entropy(logits[:, 2], answers).item(), rel=1e-6)


class AnswersWhenAIsEven(torch.nn.Module):
    """A stand-in model: the right answer when a is even, a wrong one when it is odd, and always wrong
    inside the prefix (which must not count)."""

    def forward(self, x, y, reduction="mean", prefix_len=None):
        V = P + 1
        right = F.one_hot(y.clamp(min=0), V).float()
        wrong = F.one_hot((y.clamp(min=0) + 1) % V, V).float()
        even = (x[:, :1] % 2 == 0) & (torch.arange(3) == 2)  # (B, T): the answer position of an even a
        logits = 10 * torch.where(even[..., None], right, wrong)
        target = y.masked_fill(torch.arange(3) < 2, -1)  # the answer only, as the prefix_lm model scores
        loss = F.cross_entropy(logits.view(-1, V), target.reshape(-1), ignore_index=-1, reduction="none")
        return logits, loss.view(y.shape)


def test_accuracy_is_the_share_of_answers_that_are_the_argmax(modular_dir):
    m = evaluate(AnswersWhenAIsEven(), batches(modular_dir), 0, torch.autocast("cpu", enabled=False), 0,
                 {"train": 1.0, "val": 1.0})
    for split in ("train", "val"):
        eqs = equations(modular_dir, split)
        assert m[f"{split}_acc"] == pytest.approx(sum(a % 2 == 0 for a, _, _ in eqs) / len(eqs))


def tiny_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=8, vocab_size=30, n_layer=1, n_head=2, n_embd=16, bias=True))


def test_tangent_projection_leaves_each_gradient_orthogonal_to_its_weight_with_its_norm():
    model = tiny_model()
    torch.nn.init.zeros_(model.transformer.h[0].attn.c_attn.bias)  # a zero tensor: no direction to remove
    x = torch.randint(30, (4, 8))
    model(x, x)[1].backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    project_tangent(model.parameters())
    for n, p in model.named_parameters():
        g = p.grad.flatten().double()
        assert g.norm().item() == pytest.approx(before[n].norm().item(), rel=1e-5), n
        if p.detach().norm() == 0:
            assert torch.equal(p.grad, before[n]), n
        else:
            w = p.detach().flatten().double()
            assert abs(torch.dot(g, w).item()) < 1e-5 * g.norm().item() * w.norm().item(), n
    assert any(p.dim() < 2 and not torch.equal(p.grad, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_tangent_step_moves_weights_and_differs_from_a_plain_step(optimizer):
    from types import SimpleNamespace

    from helpers.optim import make_optimizer

    x = torch.randint(30, (4, 8))
    after = {}
    for projection in ("none", "tangent"):
        model = tiny_model()
        cfg = SimpleNamespace(optimizer=optimizer, weight_decay=0.0, learning_rate=1e-2, beta1=0.9, beta2=0.99,
                              muon_lr=0.02, muon_momentum=0.95, muon_weight_decay=0.0)
        opt = make_optimizer(model, cfg, "cpu")
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        loss, finite = train.train_step(model, opt, scaler, lambda: (x, x, None), 1,
                                        torch.autocast("cpu", enabled=False), 1.0, grad_projection=projection)
        assert finite
        after[projection] = model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    assert not torch.equal(after["none"], after["tangent"])
    assert not torch.equal(after["tangent"], tiny_model().transformer.h[0].mlp.c_fc.weight)


def grok_args(data_dir, out_dir, *extra):
    """config/grokking.py, small: 32 wide, on the p = 23 dataset."""
    return [os.path.join(ROOT, "config", "grokking.py"), f"--data_dir={data_dir}", f"--out_dir={out_dir}",
            "--n_embd=32", "--eval_interval=10", "--log_interval=10", *extra]


def test_grokking_config_trains_full_batch_and_logs_accuracy(modular_dir, tmp_path):
    out = str(tmp_path / "grok")
    train.main(grok_args(modular_dir, out, "--max_iters=60", "--learning_rate=1e-2"))
    rows = read_metrics(out)
    assert [r["iter"] for r in rows] == list(range(0, 70, 10))
    assert rows[-1]["train_acc"] == 1.0 and rows[0]["train_acc"] < 0.2  # memorised the whole train split
    assert all(0 <= r["val_acc"] <= 1 for r in rows)


def test_full_batch_counts_every_training_equation_per_step(modular_dir, tmp_path, capsys):
    train.main(grok_args(modular_dir, str(tmp_path / "grok"), "--max_iters=1"))
    assert f"{round(0.3 * P * P) * 3} tokens per iteration (1 accumulation steps x 1 processes x " \
           f"{round(0.3 * P * P)} x 3)" in capsys.readouterr().out


def test_target_val_acc_stops_the_run_at_the_first_eval_that_reaches_it(modular_dir, tmp_path):
    out = str(tmp_path / "grok")
    train.main(grok_args(modular_dir, out, "--max_iters=60", "--target_val_acc=0.01"))
    rows = read_metrics(out)
    assert len(rows) == 1 and rows[0]["reached_target"] and rows[0]["val_acc"] >= 0.01


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_tangent_resumes_exactly(modular_dir, tmp_path, optimizer):
    """10 steps straight == 5 steps, stop, resume for 5 more: bit-identical weights and metrics."""
    common = ["--grad_projection=tangent", "--weight_decay=0.0", f"--optimizer={optimizer}", "--eval_interval=5",
              "--always_save_checkpoint=True", "--learning_rate=1e-2"]
    straight, split = straight_and_resumed(lambda out, *a: train.main(grok_args(modular_dir, out, *a, *common)),
                                           tmp_path, 10)
    a = torch.load(os.path.join(straight, "ckpt.pt"), weights_only=True)
    b = torch.load(os.path.join(split, "ckpt.pt"), weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("elapsed_s", "tok_per_s", "ms_per_iter")}  # noqa: E731
                          for r in rows]
    assert strip(read_metrics(straight)) == strip(read_metrics(split))


@pytest.mark.parametrize("bad, message", [
    (["--grad_projection=radial"], "grad_projection must be 'none' or 'tangent'"),
    (["--full_batch=True", "--gradient_accumulation_steps=2"], "full_batch trains on the whole train split"),
    (["--target_val_acc=1.5"], r"target_val_acc must be in \[0, 1\]"),
    (["--target_val_acc=0.9", "--target_val_loss=1.0"], "give one target"),
])
def test_bad_keys_are_refused_before_anything_is_written(modular_dir, tmp_path, bad, message):
    out = tmp_path / "never"
    with pytest.raises(UserError, match=message):
        train.main([f"--data_dir={modular_dir}", f"--out_dir={out}", "--device=cpu", *bad])
    assert not out.exists()
