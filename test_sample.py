"""sample.py and bench.py end to end on a tiny checkpoint."""

import json
import subprocess
import sys

import pytest

import sample
from configurator import UserError
from conftest import ROOT


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
    r = subprocess.run([sys.executable, "bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16",
                        "--batch_size=2", "--bench_iters=3", "--warmup_iters_bench=1", "--device=cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"ms_per_iter", "tok_per_s", "mfu", "peak_mem_mb"} <= set(result)
    assert result["ms_per_iter"] > 0 and 0 < result["mfu"] < 1 and result["peak_mem_mb"] > 0
