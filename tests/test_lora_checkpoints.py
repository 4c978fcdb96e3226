"""Adapter checkpoints: a LoRA run stores its adapters and a reference to its base (with the sha256 of
the base's files), and every reader rebuilds the whole model from the two (helpers/checkpoint.py).
All offline, on a tiny random GPT-2 saved with save_pretrained (the hf_gpt2_dir fixture)."""

import copy
import hashlib
import os
import shutil

import pytest
import torch
from transformers import GPT2LMHeadModel

import sample
import train
from conftest import straight_and_resumed
from helpers.checkpoint import load_checkpoint, model_from_checkpoint, read_metrics
from helpers.config import UserError
from tools import analyze, export, serve

IDX = torch.randint(50257, (2, 32), generator=torch.Generator().manual_seed(0))


def lora_args(base, data_dir, out_dir, *extra):
    return [f"--init_from={base}", f"--data_dir={data_dir}", f"--out_dir={out_dir}", "--block_size=32",
            "--batch_size=2", "--eval_iters=1", "--eval_interval=2", "--device=cpu", "--warmup_iters=0",
            "--learning_rate=1e-2", "--lora_rank=4", "--always_save_checkpoint=True", "--dropout=0.1",
            "--lr_decay_iters=4", *extra]


def raw(run):
    """A run's ckpt.pt as the file holds it (no base added)."""
    return torch.load(os.path.join(run, "ckpt.pt"), weights_only=True)


@pytest.fixture(scope="module")
def lora_runs(hf_gpt2_dir, gpt2_facts_dir, tmp_path_factory):
    """A LoRA run of 4 steps on a copy of the tiny GPT-2, one of 2 steps resumed to 4, and the model the
    straight run held in memory when it saved last: (base dir, straight, resumed, that model)."""
    tmp = tmp_path_factory.mktemp("lora")
    base = str(tmp / "base")
    shutil.copytree(hf_gpt2_dir, base)
    saved = {}
    real_save = train.save_checkpoint

    def keep(path, model, *args):  # the in-memory model at each save, to compare the rebuilt one with
        saved[path] = copy.deepcopy(model).eval()
        real_save(path, model, *args)
    train.save_checkpoint = keep
    try:
        straight, split = straight_and_resumed(lambda out, *a: train.main(lora_args(base, gpt2_facts_dir, out, *a)),
                                               tmp, 4)
    finally:
        train.save_checkpoint = real_save
    return base, straight, split, saved[os.path.join(straight, "ckpt.pt")]


def test_the_checkpoint_holds_the_adapters_their_optimizer_state_and_the_base_s_hash(lora_runs):
    base, straight, _, in_memory = lora_runs
    ckpt = raw(straight)
    adapters = {n for n, p in in_memory.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    assert set(ckpt["model"]) == adapters  # no base weight
    assert len(ckpt["optimizer"]["state"]) == len(adapters)
    hashes = {n: hashlib.sha256(open(os.path.join(base, n), "rb").read()).hexdigest()
              for n in ("model.safetensors", "config.json")}
    assert ckpt["base"] == {"kind": "hf_dir", "spec": base, "path": base, "sha256": hashes}
    assert os.path.getsize(os.path.join(straight, "ckpt.pt")) < os.path.getsize(os.path.join(base, "model.safetensors")) / 10


def test_the_rebuilt_model_gives_the_in_memory_model_s_logits_bit_for_bit(lora_runs):
    _, straight, _, in_memory = lora_runs
    rebuilt = model_from_checkpoint(load_checkpoint(os.path.join(straight, "ckpt.pt"))).eval()
    assert rebuilt.state_dict().keys() == in_memory.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(rebuilt(IDX)[0], in_memory(IDX)[0])


def test_an_adapter_run_resumes_exactly(lora_runs):
    """4 steps straight == 2 steps, stop, resume for 2 more: the same adapters, optimizer state and losses."""
    _, straight, split, _ = lora_runs
    a, b = raw(straight), raw(split)
    assert a["iter_num"] == b["iter_num"] == 4 and a["base"] == b["base"] and a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, state in a["optimizer"]["state"].items():
        assert all(torch.equal(v, b["optimizer"]["state"][i][n]) for n, v in state.items())
    ra, rb = read_metrics(straight), read_metrics(split)
    assert [r["iter"] for r in rb] == [0, 2, 4]
    assert [(r["train_loss"], r["val_loss"]) for r in ra] == [(r["train_loss"], r["val_loss"]) for r in rb]


def test_a_whole_lora_checkpoint_from_before_resumes_whole(lora_runs, gpt2_facts_dir, tmp_path):
    """A LoRA checkpoint that holds the whole model (as written before adapter checkpoints) resumes, and
    goes on holding the whole model: without a reference, there is no base to rebuild it from."""
    base, straight, _, _ = lora_runs
    run = str(tmp_path / "old")
    shutil.copytree(straight, run)
    whole = load_checkpoint(os.path.join(run, "ckpt.pt"))
    del whole["base"]
    torch.save(whole, os.path.join(run, "ckpt.pt"))
    train.main(lora_args(base, gpt2_facts_dir, run, "--max_iters=6", "--lr_decay_iters=6", "--init_from=resume"))
    ckpt = raw(run)
    assert ckpt["iter_num"] == 6 and "base" not in ckpt and ckpt["model"].keys() == whole["model"].keys()


def test_sample_serve_analyze_and_export_read_an_adapter_checkpoint(lora_runs, tmp_path, capsys, monkeypatch):
    _, straight, _, in_memory = lora_runs
    sample.main([f"--out_dir={straight}", "--start=Hello", "--max_new_tokens=5", "--temperature=0", "--device=cpu"])
    greedy = in_memory.generate(torch.tensor([[15496]]), 5, temperature=0)  # "Hello" in GPT-2's tokens
    from prepare.common import get_tokenizer
    assert capsys.readouterr().out.startswith(get_tokenizer(raw(straight)["meta"]).decode(greedy[0].tolist()))
    served = {}

    def capture(model, *args):  # the model serve.py would serve, taken before it listens
        served["model"] = model
        raise KeyboardInterrupt
    monkeypatch.setattr(serve, "make_server", capture)
    with pytest.raises(KeyboardInterrupt):
        serve.main([f"--out_dir={straight}", "--device=cpu"])
    with torch.no_grad():
        assert torch.equal(served["model"].eval()(IDX)[0], in_memory(IDX)[0])
    analyze.main(["lens", f"--out_dir={straight}", "--text=Hello there", f"--plot_dir={tmp_path}", "--device=cpu"])
    assert os.path.exists(tmp_path / "lens.png")
    path = str(tmp_path / "hf")
    export.main([f"--out_dir={straight}", f"--to={path}"])  # the adapters merged into the weights
    hf = GPT2LMHeadModel.from_pretrained(path).eval()
    assert not any("lora" in k for k in hf.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(hf(IDX).logits, in_memory(IDX)[0], atol=1e-4, rtol=0)


def test_a_changed_or_missing_base_is_refused_in_one_line(hf_gpt2_dir, gpt2_facts_dir, tmp_path):
    base, run = str(tmp_path / "base"), str(tmp_path / "run")
    shutil.copytree(hf_gpt2_dir, base)
    train.main(lora_args(base, gpt2_facts_dir, run, "--max_iters=2"))
    load_checkpoint(os.path.join(run, "ckpt.pt"))  # as trained: reads
    hf = GPT2LMHeadModel.from_pretrained(base)
    with torch.no_grad():
        hf.transformer.h[0].mlp.c_fc.weight[0, 0] += 1.0
    hf.save_pretrained(base)  # the same folder, other weights
    changed = r"based on .*base, whose model.safetensors has changed since \(sha256 \w+ then, \w+ now\): put back"
    for read in (lambda: load_checkpoint(os.path.join(run, "ckpt.pt")),
                 lambda: sample.main([f"--out_dir={run}", "--max_new_tokens=2", "--device=cpu"]),
                 lambda: export.main([f"--out_dir={run}", f"--to={tmp_path}/hf"]),
                 lambda: train.main(lora_args(base, gpt2_facts_dir, run, "--max_iters=4", "--init_from=resume"))):
        with pytest.raises(UserError, match=changed) as e:
            read()
        assert "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "hf")
    shutil.rmtree(base)
    with pytest.raises(UserError, match=r"based on .*base, which is missing: put that base back there") as e:
        load_checkpoint(os.path.join(run, "ckpt.pt"))
    assert "\n" not in str(e.value)


def test_a_run_folder_base_and_a_hub_name_base(hf_gpt2_dir, gpt2_facts_dir, tmp_path, monkeypatch):
    """A LoRA run on another LoRA run's folder (it trains those adapters further) records that run's
    ckpt.pt, which is rebuilt from its own base in turn; a run on a hub name records the name, the
    cached copy's revision and the hash of its files, and is read with that revision."""
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    train.main(lora_args(hf_gpt2_dir, gpt2_facts_dir, first, "--max_iters=2"))
    train.main(lora_args(first, gpt2_facts_dir, second, "--max_iters=2"))
    ref = raw(second)["base"]
    assert ref["kind"] == "file" and ref["path"] == os.path.join(first, "ckpt.pt")
    a, b = (load_checkpoint(os.path.join(d, "ckpt.pt"))["model"] for d in (first, second))
    assert all(torch.equal(a[k], b[k]) != ("lora_" in k) for k in a)  # the same base, the adapters trained on

    repo = tmp_path / "hub" / "models--some-org--tiny-gpt2"  # a hub cache, as huggingface_hub lays it out
    old, new = "a" * 40, "b" * 40  # two revisions (commit hashes)
    shutil.copytree(hf_gpt2_dir, repo / "snapshots" / old)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(old)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_run = os.path.join(tmp_path, "hub_run")
    train.main(lora_args("some-org/tiny-gpt2", gpt2_facts_dir, hub_run, "--max_iters=2"))
    ref = raw(hub_run)["base"]
    assert (ref["kind"], ref["path"], ref["revision"]) == ("hub", "some-org/tiny-gpt2", old)
    assert set(ref["sha256"]) == {"model.safetensors", "config.json"}
    trained = load_checkpoint(os.path.join(hub_run, "ckpt.pt"))["model"]
    # the hub's model moves on and is downloaded: the adapters are still read with the revision they were trained on
    hf = GPT2LMHeadModel.from_pretrained(hf_gpt2_dir)
    with torch.no_grad():
        hf.transformer.h[0].mlp.c_fc.weight[0, 0] += 1.0
    hf.save_pretrained(repo / "snapshots" / new)
    (repo / "refs" / "main").write_text(new)
    again = load_checkpoint(os.path.join(hub_run, "ckpt.pt"))["model"]
    assert all(torch.equal(trained[k], again[k]) for k in trained)
    shutil.rmtree(repo / "snapshots" / old)  # that revision gone from the cache: the newest is another model
    with pytest.raises(UserError, match=r"some-org/tiny-gpt2 \(Hugging Face hub\), whose model.safetensors has changed "
                                        rf"since \(sha256 \w+ then, \w+ now\): download revision {old} again"):
        load_checkpoint(os.path.join(hub_run, "ckpt.pt"))
