"""sample.py (sampling and beam search), bench.py and bench_memory.py end to end on tiny inputs."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

import sample
from helpers.config import UserError
from helpers.data import load_meta


def test_sample_decodes_text_from_a_checkpoint(tiny_run, capsys):
    sample.main([f"--out_dir={tiny_run}", "--start=Q: Where", "--num_samples=2", "--max_new_tokens=20",
                 "--device=cpu", "--top_k=10", "--top_p=0.9"])
    out = capsys.readouterr().out
    samples = out.split("---------------\n")[:2]
    assert len(samples) == 2 and all(s.startswith("Q: Where") and len(s) == len("Q: Where") + 21 for s in samples)


def test_sample_is_reproducible_with_a_seed_and_reads_prompt_files(tiny_run, tmp_path, capsys):
    prompt = tmp_path / "p.txt"
    prompt.write_text("Mibe Saro lives in ")
    args = [f"--out_dir={tiny_run}", f"--start=FILE:{prompt}", "--num_samples=1", "--max_new_tokens=30", "--seed=7"]
    sample.main(args)
    first = capsys.readouterr().out
    sample.main(args)
    assert capsys.readouterr().out == first and first.startswith("Mibe Saro lives in ")


def test_sample_rejects_characters_outside_the_vocabulary(tiny_run):
    with pytest.raises(UserError, match="not in this char vocabulary"):
        sample.main([f"--out_dir={tiny_run}", "--start=héllo"])


def test_bench_prints_json_with_speed_mfu_and_memory():
    r = subprocess.run([sys.executable, "tools/bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16",
                        "--batch_size=2", "--bench_iters=3", "--warmup_iters_bench=1", "--device=cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"ms_per_iter", "tok_per_s", "mfu", "peak_mem_mb"} <= set(result)
    assert result["ms_per_iter"] > 0 and 0 < result["mfu"] < 1 and result["peak_mem_mb"] > 0


FAKE_NANOGPT = """
# a stand-in for nanoGPT's model.py: its GPTConfig fields and its GPT interface, counting forward calls
from dataclasses import dataclass
import model as ours
calls = []

@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

class GPT(ours.GPT):
    def __init__(self, config):
        super().__init__(ours.GPTConfig(**vars(config)))

    def forward(self, idx, targets=None):
        calls.append(idx.shape)
        return super().forward(idx, targets)
"""


def test_bench_alternates_with_nanogpt_steps(facts_dir, tmp_path, capsys):
    from tools import bench

    (tmp_path / "model.py").write_text(FAKE_NANOGPT)
    tiny = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=2", "--device=cpu",
            "--bench_iters=2", "--warmup_iters_bench=1", "--rounds=3", f"--nanogpt={tmp_path}"]
    for data in (["--data=random"], ["--data=dataset", f"--data_dir={facts_dir}"]):
        bench.main(tiny + data)
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["ms_per_iter"] > 0 and result["nanogpt_ms_per_iter"] > 0 and result["speedup"] > 0
        calls = sys.modules["nanogpt_model"].calls
        assert len(calls) == 1 + 3 * 2 and set(calls) == {(2, 16)}  # warm-up, then 3 rounds of 2 steps
    with pytest.raises(UserError, match="drop rotary"):
        bench.main(tiny + ["--rotary=True"])
    with pytest.raises(UserError, match="nanoGPT checkout"):
        bench.main(tiny[:-1] + [f"--nanogpt={tmp_path / 'missing'}"])


def test_bench_nanogpt_eager_compiles_only_this_repos_model(tmp_path, capsys, monkeypatch):
    """--compile=True compiles both sides; --nanogpt_eager=True leaves nanoGPT's model as its CPU
    recipe runs it. torch.compile is replaced by a recorder, so nothing is really compiled here."""
    from tools import bench

    (tmp_path / "model.py").write_text(FAKE_NANOGPT)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(type(m).__module__) or m)
    tiny = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=2", "--device=cpu",
            "--bench_iters=1", "--warmup_iters_bench=1", "--rounds=1", f"--nanogpt={tmp_path}", "--compile=True"]
    bench.main(tiny)
    assert compiled == ["model", "nanogpt_model"]
    compiled.clear()
    bench.main(tiny + ["--nanogpt_eager=True"])
    assert compiled == ["model"]
    capsys.readouterr()
    with pytest.raises(UserError, match="only matters with"):
        bench.main(tiny[:-1] + ["--nanogpt_eager=True"])


def test_bench_memory_builds_a_sparse_big_copy_that_train_py_accepts(facts_dir, tmp_path):
    """bench_memory.py's big dataset: the small one's train.bin extended by a hole, meta to match
    (the two training runs themselves take a minute: run the script, docs/benchmarks.md)."""
    from tools import bench_memory

    size = bench_memory.make_dataset(facts_dir, str(tmp_path / "big"), 2**30)
    assert size == os.path.getsize(tmp_path / "big" / "train.bin") == 2**30
    assert os.stat(tmp_path / "big" / "train.bin").st_blocks * 512 < 2**20  # sparse: ~no disk used
    meta = load_meta(str(tmp_path / "big"), "facts")  # sizes agree with meta.json
    assert meta["splits"]["train"]["tokens"] == 2**29


# --- beam search ---

def test_beam_of_one_is_greedy_and_wider_beams_score_at_least_as_high():
    from test_model import tiny
    from tools.analyze import token_logprobs

    m = tiny(vocab_size=20)
    idx = torch.randint(0, 20, (1, 5), generator=torch.Generator().manual_seed(0))
    greedy = m.generate(idx, 8, temperature=0)
    seqs, scores = sample.beam_search(m, idx, 1, 8)
    assert torch.equal(seqs, greedy)
    seqs4, scores4 = sample.beam_search(m, idx, 4, 8)
    assert seqs4.shape == (4, 13) and torch.equal(scores4, scores4.sort(descending=True).values)
    # the scores are the sequences' summed log-probabilities of the new tokens
    for seq, score in [(seqs[0], scores[0]), (seqs4[0], scores4[0])]:
        assert score.item() == pytest.approx(token_logprobs(m, seq[None])[0, 4:].sum().item(), abs=1e-4)
    assert scores4[0] >= scores[0]


def test_beam_as_wide_as_the_vocabulary_finds_the_best_two_tokens():
    from test_model import tiny
    from tools.analyze import token_logprobs

    m = tiny(vocab_size=20)
    idx = torch.randint(0, 20, (1, 5), generator=torch.Generator().manual_seed(1))
    seqs, scores = sample.beam_search(m, idx, 20, 2)
    every = torch.cat([idx.repeat(400, 1), torch.cartesian_prod(torch.arange(20), torch.arange(20))], dim=1)
    best = token_logprobs(m, every)[:, 4:].sum(1).max()
    assert scores[0].item() == pytest.approx(best.item(), abs=1e-5)


def test_sample_with_beam_prints_the_best_beams_and_their_scores(tiny_run, capsys):
    sample.main([f"--out_dir={tiny_run}", "--start=Q: Where", "--beam=3", "--num_samples=2", "--max_new_tokens=10",
                 "--device=cpu"])
    out = capsys.readouterr().out
    scores = [float(line.split()[-1]) for line in out.splitlines() if "total log-probability" in line]
    assert len(scores) == 2 and scores[0] >= scores[1] and all(s < 0 for s in scores)


def test_beam_search_reads_the_prompt_as_prefix_of_prefix_lm_models():
    from model import GPT, GPTConfig
    from sample import beam_search

    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=20, n_layer=1, n_head=2, n_embd=16, prefix_lm=True)).eval()
    idx = torch.randint(0, 20, (1, 5))
    seqs, _ = beam_search(model, idx, 1, 14)  # runs past block_size, where the prefix shifts out
    greedy = model.generate(idx, 14, temperature=0)
    assert torch.equal(seqs, greedy)


def test_bench_generate_prints_a_row_per_kv_head_and_mode(capsys):
    from tools import bench_generate

    bench_generate.main(["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--vocab_size=64",
                         "--n_kv_heads=(2,1)", "--new_tokens=4", "--repeats=1"])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "KiB" in r]
    assert len(rows) == 6 and rows[0].endswith("| 1.00x |")
    bench_generate.main(["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--vocab_size=64",
                         "--n_kv_heads=(2,)", "--compress_pasts=(0,4)", "--new_tokens=4", "--repeats=1"])
    sizes = [float(r.split("|")[3].split()[0].replace(",", "")) for r in capsys.readouterr().out.splitlines() if "KiB" in r]
    assert sizes[3] < sizes[0]  # W = 4 of 16: the old 12 tokens are kept as 6 pairs
