"""Shared pytest fixtures: paths to ../shared data, an offline tiktoken cache, a tiny dataset and run."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
sys.path.insert(0, ROOT)  # model, train, helpers, tools, prepare import as they do from the repository root
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
TIKTOKEN_CACHE = os.path.join(SHARED_DATA, "tiktoken_cache")
if os.path.isdir(TIKTOKEN_CACHE):
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", TIKTOKEN_CACHE)

# A model small enough that a few dozen steps take a second on a CPU.
TINY_MODEL = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--bias=True",
              "--eval_iters=2", "--log_interval=5", "--device=cpu", "--warmup_iters=2"]


def shared_file(name):
    """Path of a file in ../shared/data, or skip the test when that folder is absent (a fresh clone)."""
    path = os.path.join(SHARED_DATA, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not found: these tests need ../shared/data beside the repo (CI has it)")
    return path


@pytest.fixture(scope="session")
def facts_dir(tmp_path_factory):
    """A small facts corpus (char tokens) written by prepare/facts.py."""
    from prepare import facts

    out = tmp_path_factory.mktemp("data") / "facts"
    facts.main(["--train_docs=300", "--val_docs=40", f"--out={out}"])
    return str(out)


def train_args(data_dir, out_dir, *extra):
    """train.py arguments for a tiny run on data_dir that writes only under out_dir."""
    return [f"--data_dir={data_dir}", f"--out_dir={out_dir}", *TINY_MODEL, *extra]


def straight_and_resumed(run, tmp_path, steps):
    """Two runs of `steps` steps: one straight, one stopped halfway and resumed (--init_from=resume).
    run(out_dir, *extra_args) trains into out_dir; returns (straight out_dir, resumed out_dir)."""
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    run(straight, f"--max_iters={steps}")
    run(split, f"--max_iters={steps // 2}")
    run(split, f"--max_iters={steps}", "--init_from=resume")
    return straight, split


@pytest.fixture(scope="session")
def tiny_run(facts_dir, tmp_path_factory):
    """A tiny model trained for 30 steps on the facts corpus: its out_dir."""
    import train

    out = str(tmp_path_factory.mktemp("run") / "out")
    train.main(train_args(facts_dir, out, "--max_iters=30", "--eval_interval=15", "--lr_decay_iters=30",
                          "--always_save_checkpoint=True"))
    return out


# Nothing in the tests may reach the Hugging Face hub (CI has no internet): transformers fails at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def hf_gpt2_dir(tmp_path_factory):
    """A tiny random GPT-2 in Hugging Face's format (save_pretrained): GPT-2's vocabulary, 2 layers, 32 wide.
    The init is wider than GPT-2's so that its logits are far from flat and greedy decoding is decisive."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, initializer_range=0.2))
    out = str(tmp_path_factory.mktemp("hf") / "tiny-gpt2")
    hf.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def gpt2_facts_dir(tmp_path_factory):
    """The facts corpus in GPT-2 BPE tokens (needs the offline tiktoken cache from ../shared/data)."""
    from prepare import facts

    shared_file("tiktoken_cache")
    out = tmp_path_factory.mktemp("data") / "facts_gpt2"
    facts.main(["--train_docs=200", "--val_docs=30", "--tokenizer=gpt2", f"--out={out}"])
    return str(out)
