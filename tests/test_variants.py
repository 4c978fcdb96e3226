"""The research variants: every GPTConfig flag (and combinations) keeps the model a working,
causal, cacheable language model, and changes exactly what it says."""


import pytest
import torch

from model import GPT, GPTConfig, apply_rotary, rotary_tables, swiglu_hidden

BASE = dict(block_size=16, vocab_size=50, n_layer=3, n_head=2, n_embd=32, dropout=0.0, bias=True)
VARIANTS = {
    "baseline": {},
    "zero_value_attn": dict(zero_value_attn=True),
    "untied": dict(tie_dims=0),
    "tie_dims_8": dict(tie_dims=8),
    "cross_layer_kv": dict(cross_layer_kv=True),
    "shared_qk": dict(shared_qk=True),
    "residual_dims_8": dict(residual_dims=8),
    "residual_dims_0": dict(residual_dims=0),
    "root_position": dict(residual_root="position"),
    "root_learned": dict(residual_root="learned"),
    "layer_widths": dict(layer_widths=(16, 32, 16), tie_dims=8),
    "layer_windows": dict(layer_windows=(2, 0, 3)),
    "shared_cycle_1": dict(n_shared_blocks=1),
    "shared_repeat_2": dict(n_shared_blocks=2, share_pattern="repeat"),
    # blocks (0, 0, 1): block 1 is first used by layer 2, so it must be 32 wide, not layer 1's 16
    "shared_repeat_widths": dict(n_shared_blocks=2, share_pattern="repeat", layer_widths=(16, 16, 32), tie_dims=8),
    "attn_sum_power": dict(attn_sum_power=0.5),
    "attn_sum_power_learned": dict(attn_sum_power=0.8, attn_sum_power_learned=True),
    "prefix_lm": dict(prefix_lm=True),
    "attn_only": dict(attn_only=True),
    "attn_gate": dict(attn_gate=True),
    # combinations
    "attention_mix": dict(zero_value_attn=True, cross_layer_kv=True, shared_qk=True, layer_windows=(3, 0, 2),
                          prefix_lm=True),
    "stream_mix": dict(residual_root="learned", residual_dims=8, layer_widths=(32, 64, 32), n_shared_blocks=2,
                       tie_dims=16, zero_value_attn=True),
    "everything": dict(zero_value_attn=True, tie_dims=8, cross_layer_kv=True, shared_qk=True, residual_dims=16,
                       residual_root="position", layer_windows=(4, 0, 4), n_shared_blocks=2,
                       attn_sum_power=0.9, attn_sum_power_learned=True, prefix_lm=True),
    # modern pieces, alone and with the variants whose keys they touch
    "rotary": dict(rotary=True),
    "qk_norm": dict(qk_norm=True),
    "rmsnorm": dict(norm="rmsnorm"),
    "relu2": dict(mlp_act="relu2"),
    "swiglu": dict(mlp_act="swiglu"),
    "logit_softcap": dict(logit_softcap=2.0),
    "gelu_tanh": dict(mlp_act="gelu_tanh"),
    "multi_query": dict(n_kv_head=1),
    "compress_past_3": dict(compress_past=3),
    "compress_past_mix": dict(compress_past=2, n_kv_head=1, rotary=True, qk_norm=True, zero_value_attn=True,
                              residual_root="learned", attn_sum_power=0.8),
    "multi_query_mix": dict(n_kv_head=1, cross_layer_kv=True, zero_value_attn=True, residual_root="learned",
                            rotary=True, qk_norm=True, layer_windows=(3, 0, 2), prefix_lm=True),
    "multi_query_widths": dict(n_kv_head=1, layer_widths=(16, 16, 32), tie_dims=8, n_shared_blocks=2,
                               share_pattern="repeat", mlp_act="swiglu"),
    "lora": dict(lora_rank=4, lora_alpha=8.0),
    "lora_modern": dict(lora_rank=2, rotary=True, mlp_act="swiglu", shared_qk=True, layer_widths=(16, 32, 16), tie_dims=8),
    "zero_init_proj": dict(zero_init_proj=True),
    "modern": dict(rotary=True, qk_norm=True, norm="rmsnorm", mlp_act="relu2", logit_softcap=15.0,
                   zero_init_proj=True),
    "modern_attention_mix": dict(rotary=True, qk_norm=True, zero_value_attn=True, cross_layer_kv=True, shared_qk=True,
                                 layer_windows=(3, 0, 2), prefix_lm=True, residual_root="learned"),
    "modern_stream_mix": dict(rotary=True, mlp_act="swiglu", norm="rmsnorm", layer_widths=(16, 32, 16), tie_dims=8,
                              n_shared_blocks=2, residual_dims=8),
    "attn_only_mix": dict(attn_only=True, n_shared_blocks=2, n_kv_head=1, rotary=True, zero_value_attn=True,
                          layer_widths=(32, 32, 32), residual_dims=16, lora_rank=2),
    "modern_power": dict(rotary=True, qk_norm=True, attn_sum_power=0.8, attn_sum_power_learned=True),
    "kv_shift": dict(kv_shift=True),
    "kv_shift_mix": dict(kv_shift=True, n_kv_head=1, rotary=True, qk_norm=True, cross_layer_kv=True, zero_value_attn=True,
                         layer_windows=(3, 0, 2), prefix_lm=True, residual_root="learned", attn_sum_power=0.8),
    "attn_gate_mix": dict(attn_gate=True, zero_value_attn=True, cross_layer_kv=True, n_kv_head=1, rotary=True,
                          layer_windows=(3, 0, 2), residual_root="learned"),
}
PREFIX = 5


def make(name, **extra):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**BASE, **VARIANTS[name], **extra})).eval()
    # zero-initialised variant parameters (sink key, offsets, root) would hide bugs: randomise them
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("sink_key", "kv_offsets", "root", "lora_B", "kv_mix")):
                p.normal_(0, 0.5)
            if n.endswith(("q_norm.weight", "k_norm.weight")):
                p.uniform_(0.5, 1.5)
            if model.config.zero_init_proj and n.endswith("c_proj.weight"):
                p.normal_(0, 0.02)
    return model


def run(model, idx, **kw):
    prefix = torch.full((idx.size(0),), PREFIX) if model.config.prefix_lm else None
    return model(idx, prefix_len=prefix, **kw)


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_backward_and_a_few_steps_lower_the_loss(name):
    model = make(name).train()
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.99), "cpu")
    idx = torch.randint(0, 50, (4, 17))
    losses = []
    for _ in range(25):
        logits, loss = run(model, idx[:, :-1], targets=idx[:, 1:])
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert logits.shape == (4, 16, 50)
    assert losses[-1] < losses[0] - 0.3


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_causality_holds_for_every_variant(name, impl):
    model = make(name, attn_impl=impl)
    idx = torch.randint(0, 50, (2, 16))
    # with prefix_lm the prefix is seen by every position, so only tokens after it may change
    t = PREFIX + 3 if model.config.prefix_lm else 6
    changed = idx.clone()
    changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 50
    a, _ = run(model, idx)
    b, _ = run(model, changed)
    torch.testing.assert_close(a[:, :t + 1], b[:, :t + 1], rtol=0, atol=1e-5)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_prefix_lm_is_bidirectional_inside_the_prefix_and_skips_its_loss():
    model = make("prefix_lm")
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, PREFIX - 1] = (idx[0, PREFIX - 1] + 1) % 50
    a, _ = run(model, idx)
    b, _ = run(model, changed)
    assert not torch.allclose(a[0, 0], b[0, 0])  # position 0 sees the last prefix token
    _, per_token = run(model, idx, targets=idx, reduction="none")
    assert (per_token[0, :PREFIX - 1] == 0).all() and (per_token[0, PREFIX - 1:] > 0).all()


@pytest.mark.parametrize("name", [n for n in VARIANTS if "power" not in n and n != "everything"])
def test_sdpa_and_manual_agree_for_every_variant(name):
    sdpa, manual = make(name, attn_impl="sdpa"), make(name, attn_impl="manual")
    idx = torch.randint(0, 50, (3, 16))
    a, _ = run(sdpa, idx)
    b, _ = run(manual, idx)
    assert (a - b).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", VARIANTS)
def test_kv_cache_generation_equals_uncached_for_every_variant(name):
    model = make(name)
    idx = torch.randint(0, 50, (2, 6))
    kw = dict(temperature=1.0, top_k=20, prefix_len=PREFIX if model.config.prefix_lm else None)
    a = model.generate(idx, 14, use_cache=True, generator=torch.Generator().manual_seed(3), **kw)
    b = model.generate(idx, 14, use_cache=False, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a, b)
    # and the cached forward pass matches the full one, logit for logit
    cache = model.new_cache()
    prefix = torch.full((2,), PREFIX) if model.config.prefix_lm else None
    full, _ = model(a[:, :16], prefix_len=prefix)
    first, _ = model(a[:, :9], cache=cache, prefix_len=prefix)
    rest, _ = model(a[:, 9:16], cache=cache, prefix_len=prefix)
    # (chunked and whole passes sum in different orders: lora's random adapters reach 1.2e-5 on some CPUs)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-5, atol=5e-5)


def n_params(**kw):
    return sum(p.numel() for p in GPT(GPTConfig(**{**BASE, **kw})).parameters())


def block_params(**kw):
    return sum(p.numel() for p in GPT(GPTConfig(**{**BASE, **kw})).transformer.h.parameters())


def test_parameter_counts_move_the_way_each_flag_says():
    V, C, L, H = BASE["vocab_size"], BASE["n_embd"], BASE["n_layer"], BASE["n_head"]
    base = n_params()
    assert n_params(tie_dims=0) == base + V * C
    assert n_params(tie_dims=8) == base + V * (C - 8)
    assert n_params(zero_value_attn=True) == base + L * C  # one key (n_head x head size) per layer
    assert n_params(cross_layer_kv=True) == base + (L - 1) * C
    assert n_params(shared_qk=True) == base - L * (C * C + C)  # no key projection (weights + bias)
    assert n_params(residual_root="learned") == base + C
    assert n_params(attn_sum_power_learned=True) == base + L * H
    assert n_params(kv_shift=True) == base + L * H * 4  # (a, b) for keys and for values, per head
    assert n_params(kv_shift=True, n_kv_head=1) == n_params(n_kv_head=1) + L * 4
    assert n_params(rotary=True) == base - BASE["block_size"] * C  # no position table
    assert n_params(qk_norm=True) == base + L * 2 * (C // H)  # a gain per head dim, for q and for k
    assert n_params(qk_norm=True, shared_qk=True) == n_params(shared_qk=True) + L * (C // H)  # keys are queries
    assert n_params(norm="rmsnorm") == base - (2 * L + 1) * C  # RMSNorm has no bias
    assert n_params(attn_only=True) == base - L * (2 * C + 8 * C * C + 5 * C)  # no ln_2, no MLP
    h = swiglu_hidden(C)
    assert n_params(mlp_act="swiglu") == base + L * ((C * 2 * h + 2 * h + h * C) - (C * 4 * C + 4 * C + 4 * C * C))
    assert abs(n_params(mlp_act="swiglu", bias=False) / n_params(bias=False) - 1) < 0.03  # about equal
    for flag in [dict(residual_dims=4), dict(residual_root="position"), dict(layer_windows=(2, 3, 4)),
                 dict(attn_sum_power=0.5), dict(prefix_lm=True), dict(attn_impl="manual"), dict(mlp_act="relu2"),
                 dict(logit_softcap=10.0), dict(zero_init_proj=True)]:
        assert n_params(**flag) == base, flag
    assert block_params(n_shared_blocks=1) * L == block_params()
    assert block_params(n_shared_blocks=3) == block_params()
    # widths (16, 32, 16): blocks of each width, and 16->32->16 maps
    per_block = {w: block_params(n_embd=w, n_layer=1) for w in (16, 32)}
    assert block_params(layer_widths=(16, 32, 16), tie_dims=8) == 2 * per_block[16] + per_block[32]
    wide = GPT(GPTConfig(**{**BASE, "layer_widths": (16, 32, 16), "tie_dims": 8}))
    assert sum(p.numel() for p in wide.resize.parameters()) == 16 * 32 * 2


def test_default_config_is_gpt2s_state_dict():
    model = GPT(GPTConfig(**{**BASE, "n_layer": 1}))
    per_block = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                 "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                 "mlp.c_proj.weight", "mlp.c_proj.bias"]
    expected = ["transformer.wte.weight", "transformer.wpe.weight", *[f"transformer.h.0.{k}" for k in per_block],
                "transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
    assert list(model.state_dict()) == expected


def test_layer_windows_hide_tokens_older_than_the_window():
    model = make("baseline", n_layer=1, layer_windows=(3,))  # position t sees t-2, t-1, t
    idx = torch.randint(0, 50, (1, 16))
    t = 10
    older, inside = idx.clone(), idx.clone()
    older[0, t - 3] = (idx[0, t - 3] + 1) % 50
    inside[0, t - 2] = (idx[0, t - 2] + 1) % 50
    a, b, c = model(idx)[0], model(older)[0], model(inside)[0]
    torch.testing.assert_close(a[0, t], b[0, t], rtol=0, atol=1e-6)
    assert not torch.allclose(a[0, t], c[0, t])


def test_residual_root_position_reads_the_token_only_through_attention():
    model = make("root_position", n_layer=1)
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8)), ["transformer.h.0.hook_resid_pre"])
    stream = cache["transformer.h.0.hook_resid_pre"]
    assert torch.equal(stream[0], stream[1])  # the stream starts the same whatever the tokens


def test_residual_dims_zero_replaces_the_stream():
    model = make("residual_dims_0", n_layer=1)
    names = ["transformer.h.0.hook_resid_mid", "transformer.h.0.hook_attn_out"]
    _, cache = model.run_with_cache(torch.randint(0, 50, (1, 8)), names)
    assert torch.equal(cache[names[0]], cache[names[1]])


def test_attn_only_blocks_are_attention_and_the_residual_only():
    model = make("attn_only")
    assert not any(".mlp." in n or ".ln_2." in n for n, _ in model.named_parameters())
    assert not any("mlp" in n for n in model.hook_names())
    names = ["transformer.h.1.hook_resid_mid", "transformer.h.1.hook_resid_post"]
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8)), names)
    assert torch.equal(cache[names[0]], cache[names[1]])


def test_shared_blocks_reuse_one_set_of_weights():
    cycle, repeat = GPTConfig(**{**BASE, "n_layer": 4, "n_shared_blocks": 2}), \
        GPTConfig(**{**BASE, "n_layer": 4, "n_shared_blocks": 2, "share_pattern": "repeat"})
    assert [cycle.block_of_layer(i) for i in range(4)] == [0, 1, 0, 1]
    assert [repeat.block_of_layer(i) for i in range(4)] == [0, 0, 1, 1]
    assert len(GPT(cycle).transformer.h) == 2


def test_zero_value_slot_mass_is_exposed_per_head():
    model = make("zero_value_attn")
    names = ["transformer.h.0.attn.hook_sink", "transformer.h.0.attn.hook_pattern"]
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8)), names)
    sink, pattern = cache[names[0]], cache[names[1]]
    assert sink.shape == (2, 2, 8) and pattern.shape == (2, 2, 8, 9)  # slot 0 is the zero value
    torch.testing.assert_close(pattern[..., 0], sink)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 2, 8))
    assert (sink > 0).all() and (sink < 1).all()


def test_attention_sum_power_scales_the_weights():
    model = make("attn_sum_power", n_layer=1)
    idx = torch.randint(0, 50, (1, 8))
    names = ["transformer.h.0.attn.hook_pattern", "transformer.h.0.attn.hook_attn_scale", "transformer.h.0.attn.hook_z"]
    _, cache = model.run_with_cache(idx, names)
    pattern, scale, z = (cache[n] for n in names)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(1, 2, 8))  # where each query looks: a softmax
    assert (scale - 1).abs().max() > 0.01  # how much it reads: not 1 when p != 1
    # against the definition, from scores computed here by hand: weights exp(s) / (sum exp(s))^p
    with torch.no_grad():
        x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(8))
        q, k, v = model.transformer.h[0].attn.c_attn(model.transformer.h[0].ln_1(x)).split(32, dim=2)
        q, k, v = (t.view(1, 8, 2, 16).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1) / 4.0).masked_fill(torch.ones(8, 8).triu(1).bool(), float("-inf"))
        weights = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True) ** 0.5
    torch.testing.assert_close(pattern * scale, weights)
    torch.testing.assert_close(z, weights @ v)


@pytest.mark.parametrize("bad, msg", [
    (dict(cross_layer_kv=True, layer_widths=(32, 64, 32), tie_dims=0), "cross_layer_kv needs every layer"),
    (dict(layer_widths=(16, 32, 64)), "tie_dims=-1 ties"),
    (dict(layer_widths=(16, 32)), "one value per layer"),
    (dict(layer_widths=(16, 33, 16), tie_dims=0), "divisible by n_head"),
    (dict(shared_qk=True, layer_windows=(1, 0, 0)), "nothing to see"),
    (dict(n_kv_head=3), "n_kv_head must divide n_head"),
    (dict(shared_qk=True, n_kv_head=1), "shared_qk's keys are its queries"),
    (dict(n_shared_blocks=1, layer_widths=(16, 32, 16), tie_dims=0), "share a block"),
    (dict(residual_dims=40), "residual_dims"),
    (dict(tie_dims=40), "tie_dims"),
    (dict(residual_root="zero"), "residual_root must be one of"),
    (dict(share_pattern="random", n_shared_blocks=1), "share_pattern"),
    (dict(n_shared_blocks=4), "n_shared_blocks"),
    (dict(attn_sum_power=1.5, attn_sum_power_learned=True), "attn_sum_power"),
    (dict(layer_windows=(2, -1, 0)), "layer_windows"),
    (dict(rotary=True, n_embd=30), "head size .* must be even"),
    (dict(rotary=True, residual_root="position"), "rotary removes"),
    (dict(norm="batchnorm"), "norm must be one of"),
    (dict(mlp_act="tanh"), "mlp_act must be one of"),
    (dict(logit_softcap=-1.0), "logit_softcap"),
    (dict(attn_only=True, mlp_act="swiglu"), "attn_only removes"),
    (dict(attn_gate=True, lora_rank=2), "attn_gate adds gates that lora_rank would freeze"),
    (dict(kv_shift=True, shared_qk=True), "kv_shift does not shift"),
    (dict(kv_shift=True, compress_past=4), "compress_past builds its own"),
])
def test_impossible_combinations_fail_at_config_time(bad, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig(**{**BASE, **bad})


def test_attn_gate_closes_a_head_per_token_and_a_closed_gate_silences_attention():
    model = make("attn_gate")
    idx = torch.randint(0, 50, (2, 10))
    names = ["transformer.h.0.attn.hook_gate", "transformer.h.0.hook_attn_out"]
    _, cache = model.run_with_cache(idx, names)
    gate = cache[names[0]]
    assert gate.shape == (2, 10, 2) and 0 < gate.min() and gate.max() < 1  # one gate per token and head
    attn = model.transformer.h[0].attn
    with torch.no_grad():  # every gate shut: the heads write nothing, c_proj adds only its bias
        attn.c_gate.weight.zero_()
        attn.c_gate.bias.fill_(-1e4)
    _, cache = model.run_with_cache(idx, names)
    assert torch.equal(cache[names[0]], torch.zeros(2, 10, 2))
    torch.testing.assert_close(cache[names[1]], attn.c_proj.bias.expand(2, 10, -1))


def test_prefix_lm_needs_prefix_lengths():
    with pytest.raises(ValueError, match="needs prefix_len"):
        make("prefix_lm")(torch.randint(0, 50, (1, 8)))


def test_cross_layer_kv_attends_over_the_previous_layers_keys_too():
    model = make("cross_layer_kv")
    names = ["transformer.h.0.attn.hook_pattern", "transformer.h.1.attn.hook_pattern"]
    _, cache = model.run_with_cache(torch.randint(0, 50, (1, 8)), names)
    assert cache[names[0]].shape[-1] == 8  # layer 0 is unchanged
    p = cache[names[1]]
    assert p.shape[-1] == 16  # [layer 0's keys | own keys], both causal
    assert torch.equal(p[..., :8].triu(1), torch.zeros_like(p[..., :8])) and (p[..., :8].sum(-1) > 0).all()


def test_shared_qk_tokens_do_not_attend_to_themselves():
    model = make("shared_qk")
    _, cache = model.run_with_cache(torch.randint(0, 50, (1, 8)), ["transformer.h.0.attn.hook_pattern"])
    p = cache["transformer.h.0.attn.hook_pattern"][0]
    assert (p.diagonal(dim1=-2, dim2=-1)[:, 1:] == 0).all() and (p[:, 0, 0] == 1).all()
    c_attn = model.transformer.h[0].attn.c_attn
    assert c_attn.weight.shape == (64, 32)  # queries/keys and values only


# --- modern pieces ---

def test_rotary_scores_depend_only_on_the_distance_and_keep_norms():
    cos, sin = rotary_tables(32, 8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    rot = lambda x, pos: apply_rotary(x, cos[pos:pos + 1], sin[pos:pos + 1])  # noqa: E731
    score = lambda i, j: (rot(q, i) * rot(k, j)).sum().item()  # noqa: E731
    assert score(7, 3) == pytest.approx(score(20, 16), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)
    torch.testing.assert_close(rot(q, 11).norm(), q.norm())
    assert "wpe" not in make("rotary").transformer  # positions live in the scores only


def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys():
    def logits(qk_norm, factor):
        model = make("baseline", qk_norm=qk_norm, n_layer=1)
        with torch.no_grad():
            c_attn = model.transformer.h[0].attn.c_attn
            c_attn.weight[:64] *= factor  # the query and key rows
            c_attn.bias[:64] *= factor
        return model(torch.arange(16).view(1, 16) % 50)[0]
    torch.testing.assert_close(logits(True, 10.0), logits(True, 1.0), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(logits(False, 10.0), logits(False, 1.0), atol=1e-3)


def test_logit_softcap_is_c_tanh_of_the_plain_logits():
    capped, plain = make("logit_softcap"), make("baseline")
    plain.load_state_dict(capped.state_dict())
    with torch.no_grad():
        plain.transformer.wte.weight *= 5  # large logits, so the cap matters
        capped.transformer.wte.weight *= 5
    idx = torch.randint(0, 50, (2, 16))
    a, b = capped(idx)[0], plain(idx)[0]
    assert a.abs().max() < 2.0 < b.abs().max() < 10.0  # (tanh rounds to exactly 1 far out)
    torch.testing.assert_close(a, 2.0 * torch.tanh(b / 2.0))


def test_zero_init_proj_starts_every_block_as_the_identity():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**BASE, "zero_init_proj": True}))
    names = ["transformer.h.0.hook_resid_pre", "transformer.h.2.hook_resid_post"]
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8)), names)
    assert torch.equal(cache[names[0]], cache[names[1]])
    assert all(m.mlp.c_proj.weight.abs().sum() == 0 for m in model.transformer.h)


def test_rmsnorm_and_the_mlp_activations_build_what_they_say():
    model = make("baseline", norm="rmsnorm", mlp_act="swiglu")
    assert isinstance(model.transformer.ln_f, torch.nn.RMSNorm)
    assert isinstance(model.transformer.h[0].ln_1, torch.nn.RMSNorm)
    mlp = model.transformer.h[0].mlp
    x = torch.randn(3, 32)
    gate, value = mlp.c_fc(x).chunk(2, dim=-1)
    torch.testing.assert_close(mlp(x), mlp.c_proj(torch.nn.functional.silu(gate) * value))
    mlp = make("relu2").transformer.h[0].mlp
    torch.testing.assert_close(mlp(x), mlp.c_proj(torch.relu(mlp.c_fc(x)) ** 2))


def test_n_kv_head_equal_to_n_head_is_the_baseline():
    torch.manual_seed(0)
    a = GPT(GPTConfig(**BASE)).eval()
    torch.manual_seed(0)
    b = GPT(GPTConfig(**BASE, n_kv_head=BASE["n_head"])).eval()
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 50, (2, 12))
    assert torch.equal(a(idx)[0], b(idx)[0])


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_grouped_query_attention_is_multi_head_attention_with_copied_key_value_heads(impl):
    """n_kv_head=2 of 4 heads: the same as 4 full heads whose keys and values repeat each group's."""
    cfg = dict(BASE, n_head=4, attn_impl=impl)
    torch.manual_seed(0)
    gqa = GPT(GPTConfig(**cfg, n_kv_head=2)).eval()
    full = GPT(GPTConfig(**cfg)).eval()
    sd, C, hs = gqa.state_dict(), cfg["n_embd"], cfg["n_embd"] // 4
    for key in [k for k in sd if k.endswith("attn.c_attn.weight") or k.endswith("attn.c_attn.bias")]:
        q, k, v = sd[key].split([C, 2 * hs, 2 * hs])
        rep = lambda t: t.view(2, hs, *t.shape[1:]).repeat_interleave(2, dim=0).reshape(C, *t.shape[1:])  # noqa: E731
        sd[key] = torch.cat([q, rep(k), rep(v)])
    full.load_state_dict(sd)
    idx = torch.randint(0, 50, (2, 12))
    torch.testing.assert_close(gqa(idx)[0], full(idx)[0])


def test_multi_query_shrinks_the_kv_cache_by_n_head():
    def cache_bytes(**kw):
        model = GPT(GPTConfig(**dict(BASE, n_head=4), **kw)).eval()
        cache = model.new_cache()
        model(torch.randint(0, 50, (1, 10)), cache=cache)
        return cache.nbytes()
    assert cache_bytes() == 4 * cache_bytes(n_kv_head=1) == 2 * cache_bytes(n_kv_head=2)


def test_last_only_logits_are_the_last_row_of_the_full_logits():
    model = make("baseline")
    idx = torch.randint(0, 50, (2, 12))
    torch.testing.assert_close(model(idx, last_only=True)[0], model(idx)[0][:, -1:])
    with pytest.raises(ValueError, match="no loss"):
        model(idx, idx, last_only=True)


def test_compress_past_reads_old_pairs_and_recent_tokens_and_is_the_baseline_when_w_covers_the_context():
    model = make("compress_past_3", attn_impl="manual")
    idx = torch.randint(0, 50, (1, 12))
    _, cache = model.run_with_cache(idx, ["transformer.h.0.attn.hook_pattern"])
    att = cache["transformer.h.0.attn.hook_pattern"][0, 0]  # (T, pairs + T): [6 pair columns | 12 full columns]
    seen = (att[9] > 0).nonzero().flatten().tolist()  # query 9, W = 3: pairs (0,1), (2,3), (4,5); tokens 6..9
    assert seen == [0, 1, 2, 6 + 6, 6 + 7, 6 + 8, 6 + 9]
    assert (att[:, :6] > 0).sum(0).tolist()[0] == 12 - 4  # pair (0, 1) from query 4 on (1 <= t - 3)
    whole = make("compress_past_3", compress_past=16)  # W >= block_size: nothing is ever old enough
    base = make("baseline")
    whole.load_state_dict(base.state_dict())
    torch.testing.assert_close(whole(idx)[0], base(idx)[0])


def test_compress_past_cache_keeps_old_tokens_as_pairs_and_matches_the_full_pass_in_any_chunks():
    model = make("compress_past_3")
    idx = torch.randint(0, 50, (2, 15))
    full = model(idx)[0]
    cache = model.new_cache()
    parts = [model(idx[:, a:b], cache=cache)[0] for a, b in ((0, 5), (5, 6), (6, 11), (11, 12), (12, 15))]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    layer = cache.layers[0]
    k, kp, start = layer.k, layer.kp, layer.start
    assert (kp.size(2), start, k.size(2)) == (6, 12, 3)  # 15 tokens: pairs up to (10, 11) merged, 12..14 whole


def test_kv_shift_starts_as_gpt2_and_b_1_makes_each_key_and_value_the_previous_tokens():
    shifted, plain = make("kv_shift", attn_impl="manual"), make("baseline", attn_impl="manual")
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        for block in shifted.transformer.h:
            block.attn.kv_mix.copy_(torch.tensor([1.0, 0.0]).repeat(2 * BASE["n_head"]))  # the init: a=1, b=0
    shifted.load_state_dict(plain.state_dict(), strict=False)  # the same weights, kv_mix aside
    assert torch.allclose(run(shifted, idx)[0], run(plain, idx)[0])
    attn = shifted.transformer.h[0].attn  # layer 0: its input does not depend on any kv_mix
    raw = shifted.run_with_cache(idx, names=["transformer.h.0.attn.hook_k", "transformer.h.0.attn.hook_v"])[1]
    with torch.no_grad():
        attn.kv_mix.copy_(torch.tensor([0.0, 1.0]).repeat(2 * BASE["n_head"]))  # a=0, b=1: only the token before
    moved = shifted.run_with_cache(idx, names=["transformer.h.0.attn.hook_k", "transformer.h.0.attn.hook_v"])[1]
    for name in ("transformer.h.0.attn.hook_k", "transformer.h.0.attn.hook_v"):
        assert torch.equal(moved[name][:, :, 1:], raw[name][:, :, :-1])
        assert (moved[name][:, :, 0] == 0).all()  # position 0 has no token before it
