"""The model's specification: shapes, GPT-2 parity, causality, both attention paths, KV cache, sampling."""

import math

import pytest
import torch

from model import GPT, GPTConfig, sample_next


def tiny(**kw):
    cfg = dict(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=True)
    cfg.update(kw)
    torch.manual_seed(0)
    return GPT(GPTConfig(**cfg)).eval()


def test_forward_shapes_and_per_token_loss():
    m = tiny()
    idx = torch.randint(0, 50, (3, 10))
    logits, loss = m(idx, idx)
    assert logits.shape == (3, 10, 50) and loss.shape == ()
    _, per_token = m(idx, idx, reduction="none")
    assert per_token.shape == (3, 10)
    torch.testing.assert_close(per_token.mean(), loss)


def test_targets_of_minus_one_are_ignored():
    m = tiny()
    idx = torch.randint(0, 50, (2, 8))
    targets = idx.clone()
    targets[:, :4] = -1
    _, loss = m(idx, targets)
    _, per_token = m(idx, idx, reduction="none")
    torch.testing.assert_close(loss, per_token[:, 4:].mean())


def test_initial_loss_is_close_to_ln_vocab():
    m = tiny(vocab_size=500)
    idx, targets = torch.randint(0, 500, (2, 8, 16))
    _, loss = m(idx, targets)
    assert abs(loss.item() - math.log(500)) < 0.1


def test_gpt2_small_has_gpt2s_parameter_count():
    # GPT-2 124M as published (Hugging Face gpt2): 124,439,808 parameters, wte tied to the head
    m = GPT(GPTConfig(vocab_size=50257))
    assert sum(p.numel() for p in m.parameters()) == 124_439_808
    assert m.lm_head.weight is m.transformer.wte.weight


def test_residual_projections_use_scaled_init():
    m = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=256, vocab_size=100, block_size=64))
    std = m.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(2 * 8)) < 0.001
    assert abs(m.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


@pytest.mark.parametrize("attn_impl", ["sdpa", "manual"])
def test_causality_changing_future_tokens_leaves_past_logits_unchanged(attn_impl):
    m = tiny(attn_impl=attn_impl)
    idx = torch.randint(0, 50, (2, 16))
    t = 9
    changed = idx.clone()
    changed[:, t + 1:] = torch.randint(0, 50, (2, 16 - t - 1))
    a, _ = m(idx)
    b, _ = m(changed)
    torch.testing.assert_close(a[:, :t + 1], b[:, :t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_sdpa_and_manual_attention_agree():
    sdpa, manual = tiny(attn_impl="sdpa"), tiny(attn_impl="manual")
    manual.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, 50, (4, 16))
    a, la = sdpa(idx, idx)
    b, lb = manual(idx, idx)
    assert (a - b).abs().max().item() < 1e-5
    # gradients agree too
    sdpa.train(), manual.train()
    la.backward(), lb.backward()
    for (n, p), q in zip(sdpa.named_parameters(), manual.parameters()):
        assert (p.grad - q.grad).abs().max().item() < 1e-5, n


def test_cache_forward_matches_full_forward():
    m = tiny()
    idx = torch.randint(0, 50, (2, 12))
    full, _ = m(idx)
    cache = m.new_cache()
    first, _ = m(idx[:, :7], cache=cache)
    rest, _ = m(idx[:, 7:], cache=cache)  # several new tokens at once: needs the offset causal mask
    torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attn_impl", ["sdpa", "manual"])
@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0), dict(top_k=5), dict(top_p=0.8)])
def test_kv_cache_generation_equals_uncached(attn_impl, sampling):
    m = tiny(attn_impl=attn_impl)
    idx = torch.randint(0, 50, (2, 5))
    # 20 new tokens run past block_size (16), where the cache must be given up
    a = m.generate(idx, 20, use_cache=True, generator=torch.Generator().manual_seed(1), **sampling)
    b = m.generate(idx, 20, use_cache=False, generator=torch.Generator().manual_seed(1), **sampling)
    assert a.shape == (2, 25)
    assert torch.equal(a, b)


def test_top_k_and_top_p_restrict_the_candidates():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, top_k=2, generator=g).item() for _ in range(200)}
    assert picks == {0, 1}
    picks = {sample_next(logits, top_p=0.7, generator=g).item() for _ in range(200)}
    assert picks == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: the nucleus is the first two
    picks = {sample_next(logits, top_p=0.4, generator=g).item() for _ in range(50)}
    assert picks == {0}  # the most likely token always stays
    assert sample_next(logits, temperature=0).item() == 0


def test_training_overfits_one_batch():
    torch.manual_seed(0)
    m = tiny().train()
    opt = m.configure_optimizers(0.0, 3e-3, (0.9, 0.99), "cpu")
    idx = torch.randint(0, 50, (4, 16))
    for _ in range(150):
        _, loss = m(idx[:, :-1], idx[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.05


def test_weight_decay_only_on_matrices_and_embeddings():
    m = tiny()
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))


def test_crop_block_size():
    m = tiny()
    m.crop_block_size(8)
    assert m.transformer.wpe.weight.shape[0] == 8
    logits, _ = m(torch.randint(0, 50, (1, 8)))
    assert logits.shape == (1, 8, 50)
    with pytest.raises(ValueError, match="longer than block_size"):
        m(torch.randint(0, 50, (1, 9)))


@pytest.mark.parametrize("bad, msg", [
    (dict(n_embd=30, n_head=4), "divisible"),
    (dict(attn_impl="flash"), "attn_impl"),
    (dict(dropout=1.5), "dropout"),
    (dict(n_layer=0), "n_layer"),
])
def test_impossible_configs_fail_at_config_time(bad, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig(**bad)


def test_estimate_mfu_is_flops_over_peak():
    m = tiny()
    flops = m.flops_per_token() * 1000 / 0.5
    assert m.estimate_mfu(1000, 0.5, peak_flops=flops * 2) == pytest.approx(0.5)


def test_hooks_off_equal_no_hooks_and_cache_reads_every_point():
    m = tiny(attn_impl="manual")
    idx = torch.randint(0, 50, (2, 12))
    plain, _ = m(idx)
    logits, cache = m.run_with_cache(idx)
    assert torch.equal(plain, logits)
    assert cache["transformer.h.1.attn.hook_pattern"].shape == (2, 2, 12, 12)
    assert cache["transformer.h.0.attn.hook_z"].shape == (2, 2, 12, 16)
    # the last residual stream through ln_f and the head is the model's own output
    final = m.lm_head(m.transformer.ln_f(cache["transformer.h.1.hook_resid_post"]))
    torch.testing.assert_close(final, logits)
    after, _ = m(idx)  # hooks are gone afterwards
    assert torch.equal(after, plain)


def test_patching_the_whole_clean_residual_restores_clean_logits():
    m = tiny()
    clean, corrupt = torch.randint(0, 50, (2, 1, 10))
    clean_logits, cache = m.run_with_cache(clean, ["transformer.h.1.hook_resid_post"])
    with m.hooks({"transformer.h.1.hook_resid_post": lambda act: cache["transformer.h.1.hook_resid_post"]}):
        patched, _ = m(corrupt)
    assert torch.equal(patched, clean_logits)
    with pytest.raises(KeyError, match="hook_names"):
        with m.hooks({"transformer.h.9.hook_nothing": lambda a: a}):
            pass


def test_attention_pattern_is_causal_and_sums_to_one():
    m = tiny()  # an sdpa model: asking for the pattern switches the pass to the manual path
    _, cache = m.run_with_cache(torch.randint(0, 50, (1, 8)), ["transformer.h.0.attn.hook_pattern"])
    p = cache["transformer.h.0.attn.hook_pattern"][0, 0]
    torch.testing.assert_close(p.sum(-1), torch.ones(8))
    assert torch.equal(p.triu(1), torch.zeros(8, 8)) and m.config.attn_impl == "sdpa"


def test_finer_hook_points_read_q_k_v_scores_neurons_and_embeddings():
    m = tiny(attn_impl="manual", n_head=4, n_kv_head=2)  # keys and values: 2 heads, each serving 2 queries
    idx = torch.randint(0, 50, (2, 12))
    names = [f"transformer.h.0.attn.hook_{p}" for p in ("q", "k", "v", "attn_scores", "pattern")] + [
        "transformer.h.0.mlp.hook_post", "transformer.h.0.hook_mlp_out", "hook_embed", "hook_pos_embed",
        "transformer.h.0.hook_resid_pre"]
    _, cache = m.run_with_cache(idx, names)
    q, k, v, scores, pattern, post, mlp_out, embed, pos, resid = (cache[n] for n in names)
    assert q.shape == (2, 4, 12, 8) and k.shape == v.shape == (2, 2, 12, 8)
    own = (q @ k.repeat_interleave(2, dim=1).transpose(-2, -1)) / math.sqrt(8)
    causal = torch.ones(12, 12).tril().bool()
    torch.testing.assert_close(scores.masked_fill(~causal, 0), own.masked_fill(~causal, 0))
    assert torch.isinf(scores[..., ~causal]).all()
    torch.testing.assert_close(scores.softmax(-1), pattern)
    assert post.shape == (2, 12, 128) and (post > -0.2).all()  # GELU's outputs, 4x wide
    torch.testing.assert_close(m.transformer.h[0].mlp.c_proj(post), mlp_out)
    assert embed.shape == (2, 12, 32) and pos.shape == (12, 32)
    torch.testing.assert_close(embed + pos, resid)


@pytest.mark.parametrize("point", ["attn.hook_pattern", "attn.hook_attn_scores"])
def test_a_hook_on_a_manual_only_point_of_a_fast_path_model_fires_and_patches(point):
    m = tiny()  # sdpa: the fused kernel has no scores or pattern, so hooks() runs the pass on the manual path
    idx = torch.randint(0, 50, (1, 10))
    plain, _ = m(idx)
    seen = []
    with m.hooks({f"transformer.h.0.{point}": seen.append}):
        read, _ = m(idx)
    assert len(seen) == 1 and seen[0].shape == (1, 2, 10, 10) and m.config.attn_impl == "sdpa"
    torch.testing.assert_close(read, plain, rtol=0, atol=1e-5)
    first = torch.zeros(10, 10)
    first[:, 0] = 1.0  # every query reads key 0 only
    only_first = (lambda p: first.expand_as(p)) if point.endswith("pattern") else \
        (lambda s: torch.where(first.bool(), 0.0, float("-inf")).expand_as(s))
    z = "transformer.h.0.attn.hook_z"
    with m.hooks({f"transformer.h.0.{point}": only_first}):
        _, cache = m.run_with_cache(idx, [z])
    assert torch.equal(cache[z][0, :, 1:], cache[z][0, :, :1].expand(2, 9, 16))  # each position read the first value
    assert not torch.allclose(m.run_with_cache(idx, [z])[1][z][0, :, 1:], cache[z][0, :, 1:])


def test_patching_values_reaches_the_head_outputs():
    m = tiny()
    _, cache = m.run_with_cache(torch.randint(0, 50, (1, 8)), ["transformer.h.0.attn.hook_z"])
    assert cache["transformer.h.0.attn.hook_z"].abs().max() > 0
    with m.hooks({"transformer.h.0.attn.hook_v": torch.zeros_like}):
        _, cache = m.run_with_cache(torch.randint(0, 50, (1, 8)), ["transformer.h.0.attn.hook_z"])
    assert torch.equal(cache["transformer.h.0.attn.hook_z"], torch.zeros(1, 2, 8, 16))


@pytest.mark.parametrize("variant", [{}, dict(rotary=True)])
def test_the_attention_path_is_chosen_per_call_and_the_config_is_left_alone(variant):
    m = tiny(**variant)
    seen = []
    m.transformer.h[0].attn.hook_pattern.register_forward_hook(lambda mod, inp, out: seen.append(out))
    idx = torch.randint(0, 50, (1, 10))
    fused, _ = m(idx)
    assert not seen  # the fused kernel has no pattern to show
    manual, _ = m(idx, attn_impl="manual")
    assert len(seen) == 1 and m.config.attn_impl == "sdpa"
    torch.testing.assert_close(manual, fused, rtol=0, atol=1e-5)
