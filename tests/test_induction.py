"""Induction heads: the head scores are right on hand-built attention patterns, the ICL score on
hand-built loss curves; training records both; the synthetic corpus repeats at varying distances."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import train_args

import train
from helpers import induction
from helpers.config import UserError
from model import GPT, GPTConfig
from prepare import induction as prepare_induction
from tools import induction as tools_induction

N = 6  # tokens in A
TOKENS = torch.cat([torch.arange(N), torch.arange(N)])  # [A][A], A without repeats of its own
T = 2 * N


def attending(keys):
    """(T, T) attention in which query i puts all its weight on key keys[i]."""
    attn = torch.zeros(T, T)
    attn[torch.arange(T), torch.tensor(keys)] = 1.0
    return attn


def scores(attn):
    return {k: induction.pattern_score(attn, induction.DETECTORS[k](TOKENS)).item() for k in induction.PATTERNS}


def test_a_previous_token_head_scores_one_on_its_pattern_and_zero_on_the_others():
    s = scores(attending([0] + list(range(T - 1))))  # query i -> i - 1 (query 0 can only read itself)
    assert s == {"previous_token": 1.0, "duplicate_token": 0.0, "induction": 0.0}


def test_an_induction_head_reads_the_token_after_the_earlier_copy():
    # first half: the head has nowhere to go and reads itself; second half: query N + j -> key j + 1
    s = scores(attending(list(range(N)) + [j + 1 for j in range(N)]))
    assert s["induction"] == 1.0 and s["duplicate_token"] == 0.0
    assert s["previous_token"] == pytest.approx(0.0)


def test_a_duplicate_token_head_reads_the_earlier_copy_of_its_own_token():
    s = scores(attending(list(range(N)) + list(range(N))))
    assert s == {"previous_token": 0.0, "duplicate_token": 1.0, "induction": 0.0}


def test_split_attention_scores_its_share_and_rows_without_a_target_do_not_count():
    attn = 0.5 * attending([0] + list(range(T - 1))) + 0.5 * attending(list(range(N)) + [j + 1 for j in range(N)])
    s = scores(attn)
    assert s["previous_token"] == pytest.approx(0.5) and s["induction"] == pytest.approx(0.5)
    assert s["duplicate_token"] == 0.0


def test_the_icl_score_is_late_loss_minus_early_loss():
    assert induction.icl_score([3.0] * 128) == 0.0
    curve = list(np.linspace(4.0, 1.0, 128))
    late, early = np.mean(curve[109:122]), np.mean(curve[6:19])
    assert induction.icl_score(curve) == pytest.approx(late - early)
    assert induction.icl_score([None] * 128) is None


def test_head_scores_read_the_models_own_patterns():
    """A model whose layer-0 pattern is replaced by an exact previous-token pattern scores 1 there."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=40, n_layer=2, n_head=2, n_embd=16))
    prev = lambda a: induction.previous_token_pattern(torch.zeros(a.shape[-1])).expand_as(a).clone()  # noqa: E731
    with model.hooks({"transformer.h.0.attn.hook_pattern": prev}):
        s = induction.head_scores(model, vocab_size=40, batch=4)
    assert s["previous_token"][0] == [pytest.approx(1.0)] * 2
    assert all(0 <= v <= 1 for row in s["induction"] for v in row)
    assert s["first_half_loss"] > 0 and s["repeat_loss"] > 0
    with pytest.raises(UserError, match="shared-block"):
        induction.head_scores(GPT(GPTConfig(block_size=16, vocab_size=40, n_layer=2, n_head=2, n_embd=16,
                                             n_shared_blocks=1)), 40)


def test_every_eval_records_the_icl_score_and_with_the_option_each_heads_scores(facts_dir, tmp_path):
    run = str(tmp_path / "r")
    train.main(train_args(facts_dir, run, "--max_iters=4", "--eval_interval=2", "--head_scores=True",
                          "--always_save_checkpoint=True"))
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert len(rows) == 3 and all(isinstance(r["icl_score"], float) for r in rows)
    assert all(np.array(r["head_scores"]["induction"]).shape == (2, 2) for r in rows)
    assert os.path.exists(os.path.join(run, "icl.png"))
    tools_induction.main(["heads", f"--out_dir={run}", f"--plot_dir={tmp_path / 'h'}", "--batch=4"])
    saved = json.load(open(tmp_path / "h" / "heads.json"))
    assert np.array(saved["previous_token"]).shape == (2, 2) and (tmp_path / "h" / "heads.png").exists()


def test_the_synthetic_corpus_repeats_segments_at_varying_distances(tmp_path):
    prepare_induction.main(["--vocab_size=500", "--doc_len=65", "--train_docs=200", "--val_docs=10",
                            f"--out={tmp_path}"])
    docs = np.fromfile(tmp_path / "train.bin", dtype=np.uint16).reshape(200, 65)
    distances = set()
    for d in docs:  # with 500 tokens, a 3-gram seen before is a copy, not chance
        seen = {}
        for i in range(len(d) - 2):
            key = tuple(d[i:i + 3])
            if key in seen:
                distances.add(i - seen[key])
            seen.setdefault(key, i)
    assert len(distances) > 20  # many distances, not one fixed offset


def test_copies_stay_within_max_distance_and_skip_prob_repeats_the_token_two_back():
    rng = np.random.default_rng(0)
    for reach, within in ((4, True), (0, False)):  # 2-token copies at 2, 4, 6, ...: their source must be in reach
        doc = prepare_induction.document(np.random.default_rng(1), 1000, 200, 1.0, 2, 2, max_distance=reach)
        near = all(any((doc[s:s + 2] == doc[p:p + 2]).all() for s in range(p - 4, p - 1)) for p in range(4, 200, 2))
        assert near == within
    doc = prepare_induction.document(rng, 1000, 100, 0.0, 3, 5, skip_prob=1.0)  # no copies, every token A B A
    assert (doc[3:] == doc[1:-2]).all()


def test_the_reproduction_writes_per_seed_results_figures_and_each_runs_heads(tmp_path, monkeypatch):
    def train_here(out_dir, args):  # train.py in this process: what the subprocess would run, without its start-up
        train.main([*args, f"--out_dir={out_dir}", "--overwrite=True"])
        return 1.0

    monkeypatch.setattr(tools_induction, "train_or_reuse", train_here)
    data, root = tmp_path / "data", tmp_path / "runs"
    config = tmp_path / "c.py"
    config.write_text(
        f"name = 'tiny'\nprepare = 'prepare/induction.py --vocab_size=20 --doc_len=33 --train_docs=50 "
        f"--val_docs=5 --out={data}'\nseeds = (3,)\nout_root = '{root}'\n"
        f"common = dict(data_dir='{data}', device='cpu', block_size=32, batch_size=4, n_head=2, n_embd=16, "
        f"max_iters=2, eval_interval=1, eval_iters=1, head_scores=True, always_save_checkpoint=True)\n"
        "runs = {'attn_only_1l': dict(n_layer=1, attn_only=True), 'full_2l': dict(n_layer=2)}\n")
    tools_induction.main([str(config)])
    out = root / "tiny"
    results = json.load(open(out / "results.json"))
    assert results["command"] == f"python tools/induction.py {config}"
    per_seed = results["runs"]["full_2l"]["per_seed"]
    assert [p["seed"] for p in per_seed] == [3] and 0 <= per_seed[0]["max_induction"] <= 1
    assert results["runs"]["attn_only_1l"]["mean"]["repeat_loss"] > 0
    for f in ("training.png", "results.md", "heads_attn_only_1l.png", "heads_full_2l.png"):
        assert (out / f).exists()
