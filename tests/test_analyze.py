"""analyze.py: every tool end to end on a tiny checkpoint, and the equalities the analyses rest on."""

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch

import train
from helpers.circuits import patched_metric
from helpers.config import UserError
from helpers.evaluate import unigram_distribution
from tools import analyze

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_tok(tiny_run):
    return analyze.load(analyze.Common(out_dir=tiny_run), analyze.Checkpoint())


def ids(tok, text):
    return torch.tensor(tok.encode(text))[None, :]


# --- every tool, end to end (the tiny model reads 32 tokens: short texts) ---

TOOL_ARGS = {
    "tokens": ["--text=Mibe Saro lives in Tulvek."],
    "distribution": [],
    "logprobs": ["--contexts=Mibe lives in Tulvek. A:|Mibe lives in Dashmur. A:", "--phrases= Tulvek| Dashmur",
                 "--perturbations=8"],
    "shape": ["--prompts=Mibe lives in Tulvek.|", "--text= A:", "--top_k=5"],
    "embeddings": [],
    "attention": ["--text=Mibe lives in Tulvek."],
    "lens": ["--text=Mibe lives in Tulvek. A: Tulvek.", "--last=10"],
    "patch": ["--clean=Mibe lives in Tulvek. A: ", "--corrupt=Mibe lives in Dashmu. A: ", "--answer=T", "--wrong=D"],
}
FILES = {"tokens": ["tokens.png", "tokens.html"], "distribution": ["distribution.png"],
         "logprobs": ["logprobs.png", "logprobs_bounds.png", "logprobs.md"], "shape": ["shape.png"],
         "embeddings": ["embeddings.png"], "attention": ["attention.png"], "lens": ["lens.png", "lens_loss.png"],
         "patch": ["patch.png"]}


@pytest.mark.parametrize("tool", TOOL_ARGS)
def test_each_tool_writes_its_files_and_prints_their_paths(tool, tiny_run, tmp_path, capsys):
    analyze.main([tool, f"--out_dir={tiny_run}", f"--plot_dir={tmp_path}", *TOOL_ARGS[tool]])
    assert sorted(os.listdir(tmp_path)) == sorted(FILES[tool])
    out = capsys.readouterr().out
    for name in FILES[tool]:
        assert f"wrote {tmp_path / name}" in out
        if name.endswith(".png"):
            assert (tmp_path / name).read_bytes()[:8] == PNG


def test_positions_overlays_one_curve_per_run(tiny_run, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(os.path.join(tiny_run, "metrics.jsonl"), other)
    analyze.main(["positions", f"--runs={tiny_run},{other}", f"--plot_dir={tmp_path}"])
    assert (tmp_path / "positions.png").read_bytes()[:8] == PNG
    with pytest.raises(UserError, match="metrics.jsonl not found or empty"):
        analyze.main(["positions", f"--runs={tiny_run},{tmp_path / 'none'}", f"--plot_dir={tmp_path}"])


def test_tokens_html_colours_every_predicted_token(tiny_run, tmp_path):
    analyze.main(["tokens", f"--out_dir={tiny_run}", f"--plot_dir={tmp_path}", "--text=Mibe Saro lives."])
    page = (tmp_path / "tokens.html").read_text()
    assert page.count("background:rgb(") == len("Mibe Saro lives.") - 1  # all but the first token
    assert page.count("<span") == len("Mibe Saro lives.")


@pytest.mark.parametrize("args, msg", [
    (["tokens", "--out_dir=/nonexistent"], "no checkpoint at /nonexistent/ckpt.pt"),
    (["tokns"], "did you mean tokens"),
    (["tokens", "--txt=a"], "did you mean text"),
    (["lens", "--out_dir={run}", "--text=" + "a" * 40], "more than the model's context of 32"),
    (["patch", "--out_dir={run}", "--clean=Mibe A:", "--corrupt=Mib A:"], "needs the same number"),
    (["logprobs", "--out_dir={run}", "--perturbations=1"], "perturbations must be >= 2"),
    (["distribution", "--runs=/nonexistent"], "not found or empty"),
])
def test_bad_input_is_one_clear_error(args, msg, tiny_run, tmp_path):
    with pytest.raises(UserError, match=msg):
        analyze.main([a.format(run=tiny_run) for a in args] + [f"--plot_dir={tmp_path}"])


# --- the numbers behind the pictures ---

def test_unigram_kl_starts_at_the_flat_models_value_and_falls(tiny_run, facts_dir):
    rows = [json.loads(line) for line in open(os.path.join(tiny_run, "metrics.jsonl"))]
    u = unigram_distribution(os.path.join(facts_dir, "train.bin"), "uint16", 58).double()
    # a fresh model predicts nearly uniformly: KL(u || uniform) = ln V - H(u)
    flat = math.log(58) + (u[u > 0] * u[u > 0].log()).sum().item()
    assert rows[0]["unigram_kl"] == pytest.approx(flat, abs=0.1)
    assert rows[-1]["unigram_kl"] < 0.5 * rows[0]["unigram_kl"]


def test_unigram_distribution_is_a_chunked_bincount_of_the_first_tokens(tmp_path):
    data = np.random.default_rng(0).integers(0, 20, 1000).astype(np.uint16)
    data.tofile(tmp_path / "t.bin")
    u = unigram_distribution(str(tmp_path / "t.bin"), "uint16", 24, max_tokens=700, chunk=64)
    assert u.shape == (24,) and torch.equal(u[20:], torch.zeros(4))
    torch.testing.assert_close(u, torch.from_numpy(np.bincount(data[:700], minlength=24) / 700).float())


def test_patching_the_full_clean_residual_at_the_last_layer_restores_clean_logits(model_tok):
    model, tok = model_tok
    clean, corrupt = ids(tok, "Mibe lives in Tulvek. A: "), ids(tok, "Mibe lives in Dashmu. A: ")
    name = "transformer.h.1.hook_resid_post"
    clean_logits, cache = model.run_with_cache(clean, [name])
    before, _ = model(corrupt)
    patched = patched_metric(model, corrupt, lambda logits: logits, (1, "hook_resid_post"), cache[name],
                             torch.ones(1, 1, 1, 1, dtype=torch.bool))
    assert torch.equal(patched, clean_logits) and not torch.equal(before, clean_logits)
    assert torch.equal(model(corrupt)[0], before)  # the hook is gone afterwards

    T = clean.size(1)
    resid, heads, ld_clean, ld_corrupt = analyze.activation_patching(model, clean, corrupt, tok.encode("T")[0],
                                                                     tok.encode("D")[0])
    assert resid.shape == (3, T) and heads.shape == (2, 2) and ld_clean != ld_corrupt
    # out of the last block only the last position reaches the prediction: all or nothing
    assert resid[-1, -1].item() == pytest.approx(1.0, abs=1e-4)
    assert resid[-1, :-1].abs().max().item() < 1e-4
    # patching an embedding where both prompts have the same token changes nothing
    same = (clean == corrupt)[0]
    assert resid[0, same].abs().max().item() < 1e-4 and resid[0, ~same].abs().max().item() > 1e-3


def test_logit_lens_at_the_last_layer_is_the_models_own_logits(model_tok):
    model, tok = model_tok
    idx = ids(tok, "Mibe lives in Tulvek. A: Tulvek.")
    lens = analyze.logit_lens(model, idx)
    assert lens.shape == (3, idx.size(1), 58)
    assert torch.equal(lens[-1], model(idx)[0][0])
    assert not torch.allclose(lens[0], lens[-1])


def test_saturation_is_the_first_layer_after_which_the_top_prediction_stays():
    top1 = torch.tensor([[1, 2, 3, 7],
                         [1, 5, 3, 8],
                         [1, 5, 4, 7]])  # layers x positions
    assert analyze.saturation_layers(top1).tolist() == [0, 1, 2, 2]


def test_confidence_bounds_shrink_as_perturbations_grow(model_tok):
    model, tok = model_tok
    context, phrase = tok.encode("Mibe lives in Tulvek. A:"), tok.encode(" Tulvek")
    g = torch.Generator().manual_seed(0)
    clean, few = analyze.phrase_logprobs(model, context, phrase, 32, 0.2, tok.n_vocab, g)
    _, many = analyze.phrase_logprobs(model, context, phrase, 512, 0.2, tok.n_vocab, g)
    hw_few, hw_many = analyze.mean_bounds(few)[1], analyze.mean_bounds(many)[1]
    assert 0 < hw_many < hw_few and 2.5 < hw_few / hw_many < 6.5  # ~ sqrt(512 / 32) = 4 (3.2 to 5.2 over seeds)
    # the clean value is log p(phrase | context) as the model's own loss computes it
    idx = torch.tensor([context + phrase])
    targets = idx[:, 1:].clone()
    targets[:, :len(context) - 1] = -1
    _, loss = model(idx[:, :-1], targets, reduction="none")
    assert clean == pytest.approx(-loss.sum().item(), abs=1e-4)
    # no noise: every copy is the clean context, and the interval has no width
    clean0, same = analyze.phrase_logprobs(model, context, phrase, 5, 0.0, tok.n_vocab, g)
    assert torch.equal(same, torch.full((5,), clean0)) and analyze.mean_bounds(same)[1] == 0


def test_pca_finds_the_plane_of_planar_data():
    torch.manual_seed(0)
    plane = torch.randn(200, 2) * torch.tensor([3.0, 1.0])
    w = plane @ torch.linalg.qr(torch.randn(16, 2))[0].T  # a 2-D cloud inside 16 dimensions
    xy, var = analyze.pca_2d(w)
    assert var[0] > var[1] and sum(var) == pytest.approx(1.0, abs=1e-4)
    def dist(a):
        return (a[:, None] - a[None]).norm(dim=-1)

    torch.testing.assert_close(dist(xy), dist(w), atol=1e-4, rtol=1e-4)  # nothing lost


def test_attention_shows_the_zero_slot_mass_of_zero_value_attn_models(facts_dir, tmp_path, capsys):
    from conftest import train_args

    run = str(tmp_path / "zv")
    train.main(train_args(facts_dir, run, "--zero_value_attn=True", "--cross_layer_kv=True", "--max_iters=2",
                          "--eval_interval=2"))
    analyze.main(["attention", f"--out_dir={run}", f"--plot_dir={tmp_path}/p", "--text=Mibe lives in Tulvek."])
    assert sorted(os.listdir(tmp_path / "p")) == ["attention.png", "attention_sink.png"]
    assert (tmp_path / "p" / "attention_sink.png").read_bytes()[:8] == PNG


@pytest.fixture(scope="module")
def shared_run(facts_dir, tmp_path_factory):
    """Three layers running two blocks (0, 0, 1): hook points that fire more than once per pass."""
    from conftest import train_args

    run = str(tmp_path_factory.mktemp("shared") / "out")
    train.main(train_args(facts_dir, run, "--n_layer=3", "--n_shared_blocks=2", "--share_pattern=repeat",
                          "--max_iters=2", "--eval_interval=2"))
    return run


# attention on a shared-block model: tests/test_robustness.py; the other tools read no hook points
@pytest.mark.parametrize("tool", ["lens", "patch"])
def test_per_layer_tools_run_on_a_shared_block_model_or_refuse_in_one_line(tool, shared_run, tmp_path):
    try:
        analyze.main([tool, f"--out_dir={shared_run}", f"--plot_dir={tmp_path}", *TOOL_ARGS[tool]])
    except UserError as e:
        assert tool == "patch" and "n_shared_blocks" in str(e) and "\n" not in str(e)
    else:
        assert sorted(os.listdir(tmp_path)) == sorted(FILES[tool])


def test_the_logit_lens_of_a_shared_block_model_reads_each_layer_once(shared_run):
    model, tok = analyze.load(analyze.Common(out_dir=shared_run), analyze.Checkpoint())
    idx = ids(tok, "Mibe lives in Tulvek.")
    lens = analyze.logit_lens(model, idx)
    assert lens.shape[0] == 4 and torch.equal(lens[-1], model(idx)[0][0])
    assert not torch.allclose(lens[1], lens[2])  # layers 0 and 1 run the same block, on different streams


def test_bootstrap_range_is_the_middle_95_percent_of_the_values():
    values = torch.linspace(0, 1, 2001, dtype=torch.float64)[torch.randperm(2001, generator=torch.Generator().manual_seed(0))]
    lo, hi = analyze.bootstrap_range(values)
    assert lo == pytest.approx(0.025, abs=0.01) and hi == pytest.approx(0.975, abs=0.01)
    assert analyze.bootstrap_range(torch.full((8,), 3.0)) == pytest.approx((3.0, 3.0))


def layer_numbers(fig):
    """The layer numbers a figure's titles and tick labels name ("layer 1 head 0", "into layer 1", ...)."""
    texts = [t.get_text() for ax in fig.axes for t in [ax.title, *ax.get_yticklabels(), *ax.get_xticklabels()]]
    return {int(n) for t in texts for n in re.findall(r"\blayer (\d+)", t)}


def test_attention_lens_and_patch_number_the_layers_alike_from_0(tiny_run, tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(analyze, "save", lambda fig, path: drawn.setdefault(os.path.basename(path), fig) and path)
    for tool in ("attention", "lens", "patch"):
        analyze.main([tool, f"--out_dir={tiny_run}", f"--plot_dir={tmp_path}", *TOOL_ARGS[tool]])
    for name in ("attention.png", "lens.png", "lens_loss.png", "patch.png"):
        assert layer_numbers(drawn[name]) == {0, 1}, name  # the tiny model's two layers, as L0H0 and L1H0 name them
