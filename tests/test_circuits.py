"""helpers/circuits.py and tools/circuits.py: direct logit attribution sums to the logit difference,
activation patching of a run into itself changes nothing, and both tools run end to end."""

import json
import os

import pytest
import torch

from helpers.circuits import (Task, induction_task, layer_hooks, logit_attribution, patch_heads, patch_sweep,
                              path_patch, run_with_layer_cache)
from helpers.config import UserError
from model import GPT, GPTConfig
from tools import circuits

BASE = dict(block_size=16, vocab_size=40, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)


def random_model(dtype=torch.float32, **kw):
    """A tiny model with every weight and bias random (zero biases would hide their parts)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**BASE, **kw})).eval().to(dtype)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.normal_(1.0 if n.endswith("weight") and p.dim() == 1 else 0.0, 0.3)
    return model


@pytest.mark.parametrize("kw", [{}, dict(bias=False), dict(attn_only=True), dict(attn_only=True, bias=False),
                                dict(n_layer=3, n_shared_blocks=2, norm="rmsnorm", rotary=True, tie_dims=8,
                                     n_kv_head=1, mlp_act="swiglu")])
def test_direct_logit_attribution_sums_to_the_logit_difference(kw):
    model = random_model(torch.float64, **kw)
    task = induction_task(40, 8, batch=3)
    parts, total = logit_attribution(model, task)
    assert total == pytest.approx(task.logit_diff(model(task.clean)[0]).item(), abs=1e-12)
    assert sum(parts.values()) == pytest.approx(total, abs=1e-9)
    L = model.config.n_layer
    assert sum(k.startswith("L") and "H" in k for k in parts) == L * 2
    assert ("L0 MLP" in parts) != model.config.attn_only and ("ln_f bias" in parts) == (model.config.bias and model.config.norm == "layernorm")
    assert all(abs(v) > 1e-6 for v in parts.values())  # every part writes something: the sum is not one part


def test_a_head_whose_output_columns_are_zero_contributes_nothing():
    model = random_model(torch.float64)
    with torch.no_grad():
        model.transformer.h[0].attn.c_proj.weight[:, 8:] = 0  # head 1 of layer 0 writes nothing
    parts, _ = logit_attribution(model, induction_task(40, 8, batch=2))
    assert parts["L0H1"] == 0 and abs(parts["L0H0"]) > 1e-4 and abs(parts["L1H1"]) > 1e-4


def test_attribution_refuses_models_whose_stream_is_not_a_sum():
    with pytest.raises(UserError, match="residual_dims"):
        logit_attribution(random_model(residual_dims=4), induction_task(40, 4))


def test_the_induction_task_repeats_its_tokens_and_corrupts_only_the_first_copy():
    t = induction_task(40, 6, batch=4, seed=1)
    assert t.clean.shape == t.corrupt.shape == (4, 12)
    assert torch.equal(t.clean[:, :6], t.clean[:, 6:]) and torch.equal(t.corrupt[:, 6:], t.clean[:, 6:])
    assert (t.corrupt[:, :6] != t.clean[:, :6]).all()
    assert t.scored.nonzero().flatten().tolist() == list(range(6, 11))
    s = t.scored
    assert torch.equal(t.answer[:, s], t.clean[:, 7:]) and torch.equal(t.wrong[:, s], t.corrupt[:, 1:6])


@pytest.mark.parametrize("kw", [{}, dict(n_layer=3, n_shared_blocks=1)])
def test_patching_a_run_into_itself_changes_nothing(kw):
    model = random_model(**kw)
    task = induction_task(40, 6, batch=2)
    clean, same, scores = patch_sweep(model, task.clean, task.clean, task.logit_diff)
    assert clean == same and set(scores) == {"heads", "heads_all", "mlps", "mlps_all"}
    assert scores["heads"].shape == (model.config.n_layer, 2, 12) and scores["mlps_all"].shape == (model.config.n_layer,)
    for v in scores.values():
        torch.testing.assert_close(v, torch.full_like(v, clean), rtol=0, atol=1e-5)


def test_patching_every_head_mlp_and_embedding_recovers_the_clean_logits():
    model = random_model()
    task = induction_task(40, 6, batch=2)
    L = model.config.n_layer
    keys = [(i, p) for i in range(L) for p in ("attn.hook_z", "hook_mlp_out")] + [(None, "hook_embed")]
    clean_logits, cache = run_with_layer_cache(model, task.clean, keys)
    with layer_hooks(model, {k: (lambda act, k=k: cache[k]) for k in keys}):
        patched, _ = model(task.corrupt)
    torch.testing.assert_close(patched, clean_logits, rtol=0, atol=1e-6)
    assert not torch.allclose(model(task.corrupt)[0], clean_logits, atol=1e-3)


def test_patch_heads_restores_nothing_where_the_patch_cannot_reach_the_scored_positions():
    model = random_model(attn_only=True)
    task = induction_task(40, 6, batch=2)
    scores, clean, corrupt = patch_heads(model, task)
    heads = scores["heads"]
    assert heads.shape == (2, 2, 12) and scores["heads_all"].shape == (2, 2) and "mlps" not in scores
    assert clean != corrupt
    last = heads[-1]  # the last layer's output at a position reaches that position's logits only
    assert (last[:, ~task.scored] == 0).all() and (last[:, task.scored].abs() > 1e-4).any()
    assert (heads[:, :, -1] == 0).all()  # the final position is not scored, and nothing reads it
    # in the last layer each position acts alone: patching them all restores the sum of the single ones
    torch.testing.assert_close(scores["heads_all"][-1], last.sum(-1), rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="nothing to restore"):
        patch_heads(model, Task(task.clean, task.clean, task.answer, task.wrong, task.scored))


def test_path_patching_restores_nothing_through_a_sender_or_receiver_that_writes_nothing():
    model = random_model(n_layer=3, attn_only=True)
    with torch.no_grad():
        model.transformer.h[0].attn.c_proj.weight[:, :8] = 0  # sender L0H0 writes nothing
        model.transformer.h[2].attn.c_proj.weight[:, 8:] = 0  # receiver L2H1 writes nothing
    paths = path_patch(model, induction_task(40, 6, batch=2))
    assert set(paths) == {"q", "k", "v"}
    for p in paths.values():
        assert p.shape == (3, 2, 3, 2) and p[2].isnan().all() and p[1, :, :2].isnan().all()
        assert (p[0, 0, 1:] == 0).all() and (p[:2, :, 2, 1] == 0).all()
        assert (p[0, 1, 1:, 0].abs() > 1e-5).all() and (p[1, :, 2, 0].abs() > 1e-5).all()


def test_layer_hooks_see_one_layer_of_a_shared_block():
    model = random_model(n_layer=3, n_shared_blocks=1)
    keys = [(i, "hook_resid_pre") for i in range(3)] + [(i, "hook_resid_post") for i in range(3)]
    _, cache = run_with_layer_cache(model, torch.randint(0, 40, (1, 8)), keys)
    for i in range(2):
        assert torch.equal(cache[i, "hook_resid_post"], cache[i + 1, "hook_resid_pre"])
    assert not torch.equal(cache[0, "hook_resid_post"], cache[1, "hook_resid_post"])


@pytest.mark.parametrize("tool, args", [("attribution", ["--half=6", "--batch=2"]),
                                        ("patch", ["--half=6", "--batch=2"]),
                                        ("path", ["--half=4", "--batch=2"]),
                                        ("patch", ["--task=text", "--clean=Mibe lives in Tulvek. A: ",
                                                   "--corrupt=Mibe lives in Dashmu. A: ", "--answer=T",
                                                   "--wrong=D"])])
def test_each_circuits_tool_writes_json_and_png(tool, args, tiny_run, tmp_path, capsys):
    circuits.main([tool, f"--out_dir={tiny_run}", f"--plot_dir={tmp_path}", *args])
    assert sorted(os.listdir(tmp_path)) == [f"{tool}.json", f"{tool}.png"]
    data = json.loads((tmp_path / f"{tool}.json").read_text())
    if tool == "attribution":
        assert sum(data["parts"].values()) == pytest.approx(data["logit_diff"], abs=1e-4)
    elif tool == "patch":
        assert len(data["heads"]) == 2 and len(data["mlps"]) == 2 and len(data["heads_all"]) == 2
    else:
        assert data["k"][0][0][0] == [None, None] and isinstance(data["k"][0][0][1][0], float)
    assert f"wrote {tmp_path / (tool + '.png')}" in capsys.readouterr().out


@pytest.mark.parametrize("args, msg", [(["patch", "--half=20"], "more than the context of 32"),
                                       (["patch", "--task=text"], "needs --clean"),
                                       (["patch", "--task=words"], "induction or text"),
                                       (["patchs"], "one of attribution, patch, path")])
def test_circuits_bad_input_is_one_clear_error(args, msg, tiny_run, tmp_path):
    with pytest.raises(UserError, match=msg):
        circuits.main([*args[:1], f"--out_dir={tiny_run}", f"--plot_dir={tmp_path}", *args[1:]])
