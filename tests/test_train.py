"""train.py: data loading, the loop, metrics and plots, checkpoints and exact resume, DDP, bad input."""

import json
import os
import platform
import shutil
import subprocess
import sys
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY_MODEL, straight_and_resumed, train_args

import train
from helpers.checkpoint import load_checkpoint, model_from_checkpoint
from helpers.config import TrainConfig, UserError
from helpers.data import Batches
from helpers.evaluate import evaluate
from helpers.optim import make_optimizer
from model import GPT, GPTConfig


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


# --- data ---

@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_memmap_batches_y_is_x_shifted_and_dtype_is_honoured(tmp_path, dtype):
    tokens = np.arange(1000, dtype=dtype) + (70000 if dtype == "uint32" else 0)
    for split in ("train", "val"):
        tokens.tofile(tmp_path / f"{split}.bin")
    meta = {"dtype": dtype, "splits": {"train": {"tokens": 1000}, "val": {"tokens": 1000}}}
    b = Batches(str(tmp_path), meta, block_size=8, batch_size=5, device="cpu", respect_doc_boundaries=False)
    x, y, _ = b.get("train", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    assert x.min().item() >= tokens[0]  # no wrap-around of uint16 values read as uint32 or back


def test_doc_aligned_windows_start_at_documents_and_ignore_targets_past_their_end(facts_dir):
    meta = json.load(open(os.path.join(facts_dir, "meta.json")))
    starts = np.load(os.path.join(facts_dir, "val.docs.npy"))[:, 0]
    data = np.fromfile(os.path.join(facts_dir, "val.bin"), dtype=meta["dtype"])
    b = Batches(facts_dir, meta, block_size=400, batch_size=16, device="cpu")
    x, y, _ = b.get("val", torch.Generator().manual_seed(0))
    ends = list(starts[1:]) + [len(data)]
    for xb, yb in zip(x, y):
        n = int((yb != -1).sum())
        # the window is one whole document (all fit in 400 tokens) and nothing after it
        match = [(s, e) for s, e in zip(starts, ends) if e - s - 1 == n and np.array_equal(data[s:e - 1], xb[:n].numpy())]
        assert len(match) == 1
        s, e = match[0]
        assert np.array_equal(data[s + 1:e], yb[:n].numpy()) and (yb[n:] == -1).all()
    # documents longer than the context get full windows at random offsets inside them
    b = Batches(facts_dir, meta, block_size=8, batch_size=64, device="cpu")
    x, y, _ = b.get("val", torch.Generator().manual_seed(0))
    assert (y != -1).all() and torch.equal(y[:, :-1], x[:, 1:])
    assert len(set(map(tuple, x.tolist()))) > 40  # varied offsets, not always the document starts


def test_sweep_scores_every_target_token_once(facts_dir, tmp_path):
    # one stream: consecutive windows, the last piece shorter than the context dropped
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "val.bin")
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "train.bin")
    meta = {"dtype": "uint16", "splits": {"train": {"tokens": 1000}, "val": {"tokens": 1000}}}
    b = Batches(str(tmp_path), meta, block_size=8, batch_size=5, device="cpu", respect_doc_boundaries=False)
    batches = list(b.sweep("val", torch.Generator().manual_seed(0)))
    assert [len(x) for x, _, _ in batches] == [5] * 24 + [4]  # 124 windows of 8
    assert np.array_equal(torch.cat([y for _, y, _ in batches]).flatten().numpy(), np.arange(1, 993))
    # documents: each read from its start in consecutive windows; every token after a document's first
    # is a target once, and nothing crosses into the next document
    meta = json.load(open(os.path.join(facts_dir, "meta.json")))
    starts = np.load(os.path.join(facts_dir, "val.docs.npy"))[:, 0]
    data = np.fromfile(os.path.join(facts_dir, "val.bin"), dtype=meta["dtype"])
    ends = list(starts[1:]) + [len(data)]
    b = Batches(facts_dir, meta, block_size=16, batch_size=7, device="cpu")
    ys = torch.cat([y for _, y, _ in b.sweep("val", torch.Generator().manual_seed(0))]).flatten()
    want = np.concatenate([data[s + 1:e] for s, e in zip(starts, ends)])
    assert np.array_equal(ys[ys != -1].numpy(), want)


def test_eval_iters_0_is_the_exact_loss_of_the_whole_split(tmp_path):
    tokens = (np.arange(2000) * 7 % 50).astype(np.uint16)
    for split in ("train", "val"):
        tokens.tofile(tmp_path / f"{split}.bin")
    meta = {"dtype": "uint16", "splits": {"train": {"tokens": 2000}, "val": {"tokens": 2000}}}
    b = Batches(str(tmp_path), meta, block_size=16, batch_size=8, device="cpu", respect_doc_boundaries=False)
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=50))
    m = evaluate(model, b, 0, nullcontext(), 0, {"train": 1.0, "val": 1.0})
    n = (2000 - 16 - 1) // 16 + 1  # windows starting at 0, 16, ... with a target after each input
    x = torch.from_numpy(tokens[:n * 16].astype(np.int64)).view(n, 16)
    y = torch.from_numpy(tokens[1:n * 16 + 1].astype(np.int64)).view(n, 16)
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()).item()
    assert m["val_loss"] == pytest.approx(want, rel=1e-5) and m["train_loss"] == pytest.approx(want, rel=1e-5)


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    c = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    lrs = [train.get_lr(i, c) for i in range(200)]
    assert lrs[0] < lrs[5] < lrs[9] < 1.0
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.55)
    assert lrs[110] == pytest.approx(0.1) and lrs[199] == 0.1


# --- the loop, metrics and plots ---

def test_tiny_run_lowers_loss_and_writes_metrics_config_and_plots(tiny_run):
    r = rows(tiny_run)
    assert [x["iter"] for x in r] == [0, 15, 30]  # eval at 0, every eval_interval, and at the end
    assert r[-1]["val_loss"] < r[0]["val_loss"] - 0.5
    for key in ["train_loss", "val_loss", "lr", "elapsed_s", "tokens", "tok_per_s", "mean_p", "val_bpb"]:
        assert key in r[-1]
    assert len(r[-1]["position_loss"]) == 32  # one value per position of the context
    assert r[-1]["mean_p"] > r[0]["mean_p"]
    assert r[-1]["tokens"] == 30 * 4 * 32
    config = json.load(open(os.path.join(tiny_run, "config.json")))
    assert config["model"]["n_layer"] == 2 and config["train"]["max_iters"] == 30
    assert config["model"]["vocab_size"] == 58  # taken from the data's meta.json
    for png in ["position_loss.png", "loss.png", "mean_p.png"]:
        with open(os.path.join(tiny_run, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_holds_plain_state_dict_config_and_meta(tiny_run):
    ckpt = load_checkpoint(os.path.join(tiny_run, "ckpt.pt"))
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])
    assert ckpt["iter_num"] == 30 and ckpt["model_args"]["n_embd"] == 32
    assert ckpt["meta"]["tokenizer"] == "char" and ckpt["config"]["train"]["eval_interval"] == 15
    model = model_from_checkpoint(ckpt)  # round trip into a fresh model
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k])


def test_plot_only_redraws_from_metrics(tiny_run, tmp_path):
    train.main([f"--out_dir={tiny_run}", f"--plot_dir={tmp_path}", "--plot_only=True"])
    assert sorted(os.listdir(tmp_path)) == ["icl.png", "loss.png", "mean_p.png", "position_loss.png"]


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_continues_exactly(facts_dir, tmp_path, optimizer):
    """20 steps straight == 10 steps, stop, resume for 10 more: same weights, same losses."""
    common = ["--lr_decay_iters=20", "--eval_interval=10", "--always_save_checkpoint=True", "--dropout=0.1",
              f"--optimizer={optimizer}"]
    straight, split = straight_and_resumed(lambda out, *a: train.main(train_args(facts_dir, out, *a, *common)),
                                           tmp_path, 20)
    a = torch.load(os.path.join(straight, "ckpt.pt"), weights_only=True)
    b = torch.load(os.path.join(split, "ckpt.pt"), weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ra, rb = rows(straight), rows(split)
    assert [r["iter"] for r in rb] == [0, 10, 20]
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]


def test_scratch_run_refuses_to_overwrite_a_checkpoint(tiny_run, facts_dir):
    before = os.path.getmtime(os.path.join(tiny_run, "ckpt.pt"))
    with pytest.raises(UserError, match="already exists: pass --init_from=resume"):
        train.main(train_args(facts_dir, tiny_run, "--max_iters=2"))
    assert os.path.getmtime(os.path.join(tiny_run, "ckpt.pt")) == before


def test_gradient_accumulation_counts_tokens_per_step(facts_dir, tmp_path, capsys):
    train.main(train_args(facts_dir, str(tmp_path), "--max_iters=2", "--eval_interval=100",
                          "--gradient_accumulation_steps=3"))
    assert "384 tokens per iteration (3 accumulation steps x 1 processes x 4 x 32)" in capsys.readouterr().out


# --- bad input: one clear error, nothing overwritten ---

def test_missing_data_names_the_prepare_command(tmp_path):
    with pytest.raises(UserError, match=r"not found: run `python prepare/shakespeare_char.py` first"):
        train.main(["--dataset=shakespeare_char", f"--data_dir={tmp_path}", f"--out_dir={tmp_path}/o", *TINY_MODEL])


def test_missing_meta_is_reported(facts_dir, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(facts_dir, d)
    os.remove(d / "meta.json")
    with pytest.raises(UserError, match="meta.json not found"):
        train.main(train_args(str(d), str(tmp_path / "o")))


def test_meta_inconsistent_with_bin_size_is_reported(facts_dir, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(facts_dir, d)
    with open(d / "val.bin", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(UserError, match="val.bin has 1000 bytes but meta.json says"):
        train.main(train_args(str(d), str(tmp_path / "o")))


def test_block_size_larger_than_val_split_is_reported(tmp_path):
    from prepare import facts

    facts.main(["--train_docs=50", "--val_docs=1", f"--out={tmp_path}/d"])
    with pytest.raises(UserError, match="lower --block_size"):
        train.main(train_args(f"{tmp_path}/d", str(tmp_path / "o"), "--block_size=1024"))


def test_vocab_of_data_differs_from_checkpoint(tiny_run, tmp_path):
    from prepare import shakespeare_char

    text = tmp_path / "t.txt"
    text.write_text("hello world, a small text. " * 200)
    shakespeare_char.main(["--input", str(text), "--out", str(tmp_path / "d")])
    with pytest.raises(UserError, match="checkpoint was trained on char tokens \\(vocab 58\\)"):
        train.main(train_args(str(tmp_path / "d"), tiny_run, "--init_from=resume"))


def test_resume_without_checkpoint(facts_dir, tmp_path):
    with pytest.raises(UserError, match="no checkpoint at"):
        train.main(train_args(facts_dir, str(tmp_path), "--init_from=resume"))


def test_corrupt_or_truncated_checkpoint(tiny_run, facts_dir, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    data = open(os.path.join(tiny_run, "ckpt.pt"), "rb").read()
    (out / "ckpt.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        train.main(train_args(facts_dir, str(out), "--init_from=resume"))


def test_wrong_dtype_and_device_are_reported(facts_dir, tmp_path):
    with pytest.raises(UserError, match="dtype must be"):
        train.main(train_args(facts_dir, str(tmp_path), "--dtype=fp8"))
    with pytest.raises(UserError, match="float16 needs a CUDA device"):
        train.main(train_args(facts_dir, str(tmp_path), "--dtype=float16"))


KEEP_FREED_MEMORY_CHECK = """
import resource, numpy as np
from helpers.device import keep_freed_memory
def faults():  # minor page faults of 10 rounds of allocating and freeing 40 x 1 MB, like a step's activations
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        blocks = [np.ones(1 << 17) for _ in range(40)]
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
before = faults()
ok = keep_freed_memory()
faults()  # the first round after the switch may still fault in the heap it grows
print(ok, before, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory tunes glibc's malloc")
def test_keep_freed_memory_stops_page_faults_between_steps():
    r = subprocess.run([sys.executable, "-c", KEEP_FREED_MEMORY_CHECK], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)  # python -c imports from its working directory: the repository
    ok, before, after = r.stdout.split()
    assert ok == "True"
    assert int(before) > 2000 and int(after) < int(before) / 20, (before, after)


def test_a_checkpoint_without_our_config_record_still_resumes(tiny_run, facts_dir, tmp_path, capsys):
    ckpt = torch.load(os.path.join(tiny_run, "ckpt.pt"), weights_only=True)
    del ckpt["config"]  # as in nanoGPT's checkpoints
    (tmp_path / "o").mkdir()
    torch.save(ckpt, tmp_path / "o" / "ckpt.pt")
    train.main(train_args(facts_dir, str(tmp_path / "o"), "--init_from=resume", "--eval_only=True"))
    assert "eval 30: train loss" in capsys.readouterr().out


def test_changing_the_model_on_resume_is_refused(tiny_run, facts_dir):
    with pytest.raises(UserError, match="cannot change model key"):
        train.main(train_args(facts_dir, tiny_run, "--init_from=resume", "--n_layer=3"))


# --- DDP ---

def test_ddp_with_two_gloo_processes_writes_one_checkpoint(facts_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
           *train_args(facts_dir, str(out), "--max_iters=4", "--eval_interval=4", "--gradient_accumulation_steps=2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p for p in os.listdir(out) if p.endswith(".pt")) == ["ckpt.pt"]
    assert "2 processes" in r.stdout and r.stdout.count("eval 4:") == 1
    assert [x["iter"] for x in rows(str(out))] == [0, 4]


def test_eval_only_reports_and_leaves_the_run_untouched(tiny_run, facts_dir, capsys):
    files = ("metrics.jsonl", "config.json", "ckpt.pt")
    before = {f: open(os.path.join(tiny_run, f), "rb").read() for f in files}
    train.main(train_args(facts_dir, tiny_run, "--init_from=resume", "--eval_only=True"))
    assert "eval 30: train loss" in capsys.readouterr().out
    assert {f: open(os.path.join(tiny_run, f), "rb").read() for f in files} == before


def test_eval_only_with_eval_iters_0_scores_the_whole_split(tiny_run, facts_dir, capsys):
    train.main(train_args(facts_dir, tiny_run, "--init_from=resume", "--eval_only=True", "--eval_iters=0"))
    assert "eval 30: train loss" in capsys.readouterr().out
    with pytest.raises(UserError, match="or 0 for the whole split"):
        train.main(train_args(facts_dir, tiny_run, "--eval_iters=-1"))
    with pytest.raises(UserError, match="not implemented for freeze_base"):
        train.main(train_args(facts_dir, tiny_run, "--eval_iters=0", "--freeze_base=True", "--base=x.pt"))


def test_prefix_lm_batches_carry_the_facts_block_or_a_sampled_split(facts_dir, tmp_path):
    meta = json.load(open(os.path.join(facts_dir, "meta.json")))
    docs = np.load(os.path.join(facts_dir, "val.docs.npy"))
    data = np.fromfile(os.path.join(facts_dir, "val.bin"), dtype=meta["dtype"])
    b = Batches(facts_dir, meta, block_size=400, batch_size=8, device="cpu", prefix_lm=True)
    x, y, prefix = b.get("val", torch.Generator().manual_seed(0))
    for xb, p in zip(x, prefix):
        start = next(s for s, _ in docs if np.array_equal(data[s:s + 20], xb[:20].numpy()))
        assert p == dict(map(tuple, docs))[start] > 0  # the document's facts block
    b = Batches(facts_dir, meta, block_size=16, batch_size=64, device="cpu", prefix_lm=True,
                      respect_doc_boundaries=False)
    _, _, prefix = b.get("val", torch.Generator().manual_seed(0))
    assert prefix.min() >= 1 and prefix.max() <= 15 and len(set(prefix.tolist())) > 5
    out = str(tmp_path / "plm")
    train.main(train_args(facts_dir, out, "--prefix_lm=True", "--max_iters=4", "--eval_interval=4"))
    assert rows(out)[-1]["val_loss"] < rows(out)[0]["val_loss"]


# --- speed: Muon, the race to a target loss ---

def test_muon_gets_exactly_the_hidden_matrices_and_adamw_the_rest():
    import re

    from model import GPT, GPTConfig

    # variants with 2-D parameters that are not hidden matrices (sink keys, offsets), width maps, untied head
    cfg = GPTConfig(block_size=16, vocab_size=50, n_layer=3, n_head=2, n_embd=32, zero_value_attn=True,
                    layer_widths=(32, 32, 64), tie_dims=0, qk_norm=True)
    model = GPT(cfg)
    opt = make_optimizer(model, TrainConfig(optimizer="muon"), "cpu")
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    name = {id(p): n for n, p in model.named_parameters()}
    on_muon = {name[id(p)] for g in muon.param_groups for p in g["params"]}
    on_adamw = [name[id(p)] for g in adamw.param_groups for p in g["params"]]
    hidden = re.compile(r"transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight|resize\.2\.weight")
    assert on_muon == {n for n, _ in model.named_parameters() if hidden.fullmatch(n)}
    assert len(on_muon) == 3 * 4 + 1
    assert sorted(on_muon | set(on_adamw)) == sorted(n for n, _ in model.named_parameters())
    assert len(on_adamw) == len(set(on_adamw)) and not on_muon & set(on_adamw)
    assert {"lm_head.weight", "transformer.wte.weight", "transformer.h.0.attn.sink_key"} <= set(on_adamw)
    # one schedule drives both: Muon's group carries its peak lr as a ratio of learning_rate
    assert muon.param_groups[0]["lr_ratio"] == pytest.approx(0.02 / 2e-3)
    assert all(g["lr_ratio"] == 1.0 for g in adamw.param_groups)


def test_muon_run_lowers_the_loss_and_refuses_to_resume_as_adamw(facts_dir, tmp_path):
    out = str(tmp_path / "muon")
    train.main(train_args(facts_dir, out, "--optimizer=muon", "--max_iters=20", "--eval_interval=20"))
    assert rows(out)[-1]["val_loss"] < rows(out)[0]["val_loss"] - 0.5
    with pytest.raises(UserError, match="trained with optimizer=muon: pass --optimizer=muon"):
        train.main(train_args(facts_dir, out, "--init_from=resume", "--max_iters=30"))


def test_target_val_loss_stops_at_the_first_eval_below_it_and_records_the_time(facts_dir, tmp_path, capsys):
    out = str(tmp_path / "race")
    train.main(train_args(facts_dir, out, "--max_iters=60", "--eval_interval=5", "--target_val_loss=3.0"))
    r = rows(out)
    assert r[-1]["iter"] < 60 and r[-1]["val_loss"] <= 3.0  # stopped early, at the first eval below 3.0
    assert all(x["val_loss"] > 3.0 and x["reached_target"] is False for x in r[:-1])
    assert r[-1]["reached_target"] is True and "time_to_target_s" not in r[-2]
    assert 0 < r[-1]["time_to_target_s"] == r[-1]["elapsed_s"]  # evals included
    assert f"reached target val loss 3.0 at iter {r[-1]['iter']}: time to target" in capsys.readouterr().out
    out = str(tmp_path / "never")
    train.main(train_args(facts_dir, out, "--max_iters=5", "--eval_interval=5", "--target_val_loss=0.01"))
    assert [x["reached_target"] for x in rows(out)] == [False, False]
    assert "target val loss 0.01 not reached in 5 iterations" in capsys.readouterr().out


# --- experiment extras (helpers/extras.py) ---

def test_a_plain_config_builds_no_extras_and_each_experiment_key_its_own(facts_dir):
    from helpers.extras import make_extras

    meta = json.load(open(os.path.join(facts_dir, "meta.json")))
    plain = make_extras(TrainConfig(), facts_dir, meta, "cpu")
    assert plain.extras == [] and not plain.can_stop
    assert plain.metrics(None) == {} and plain.summary({}) == "" and plain.loss(None, None) is None
    for key, value, name in [("freeze_base", True, "Priming"), ("full_batch", True, "FullBatch"),
                             ("head_scores", True, "HeadScores"), ("target_val_loss", 3.0, "TargetRace"),
                             ("target_val_acc", 0.9, "TargetRace")]:
        extras = make_extras(TrainConfig(**{key: value}), facts_dir, meta, "cpu")
        assert [type(e).__name__ for e in extras.extras] == [name], key
        assert extras.can_stop == (name == "TargetRace"), key


def test_the_forgetting_loss_is_chosen_and_announced_only_with_forget_weight(tmp_path, capsys):
    from helpers.extras import make_extras
    from helpers.knowledge import Forgetting, Knowledge
    from prepare import world

    data = str(tmp_path / "world")
    world.main(["--people=30", "--held_out=8", "--group_size=6", "--name_parts=10", "--train_docs=300",
                "--val_docs=40", "--eval_questions=10", f"--out={data}"])
    meta = json.load(open(os.path.join(data, "meta.json")))
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=48, vocab_size=meta["vocab_size"]))
    gen = torch.Generator().manual_seed(0)
    # a fixed world brings its metrics; the loss is the model's own until forget_weight replaces it
    plain = make_extras(TrainConfig(), data, meta, "cpu")
    assert [type(e) for e in plain.extras] == [Knowledge] and plain.loss(model, gen) is None
    forgetting = make_extras(TrainConfig(forget_weight=0.5, forget_batch_size=8), data, meta, "cpu").loss(model, gen)
    assert isinstance(forgetting, Forgetting) and forgetting.model is model
    assert forgetting.weight == 0.5 and forgetting.batch_size == 8
    common = [f"--data_dir={data}", *TINY_MODEL, "--block_size=48", "--max_iters=1", "--eval_interval=1"]
    train.main([*common, f"--out_dir={tmp_path / 'plain'}"])
    assert "training loss:" not in capsys.readouterr().out
    train.main([*common, f"--out_dir={tmp_path / 'forget'}", "--forget_weight=0.5", "--forget_batch_size=8"])
    out = capsys.readouterr().out
    assert ("training loss: the LM loss on open-book and counterfactual documents + 0.5 x the forgetting term "
            "on 8 closed-book questions (helpers/knowledge.py Forgetting), in place of the model's next-token loss"
            in out)
    assert "closed_book" in rows(str(tmp_path / "forget"))[-1]
