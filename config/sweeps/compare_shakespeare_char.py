# Every research variant of model.py against the GPT-2 baseline, at the size of nanoGPT's CPU recipe
# (4 layers, 4 heads, 128 wide, 64-token context, batch 12) on tiny Shakespeare characters.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_shakespeare_char.py
#   python tools/compare.py config/sweeps/compare_shakespeare_char.py --seeds="(0,)"        # one seed, ~1/3 of the time
# Finished runs in out-compare/shakespeare_char/ are reused: adding seeds later trains only the new ones.
# docs/variants.md has the results.

name = "shakespeare_char"
seeds = (0, 1, 2)
common = dict(
    dataset="shakespeare_char", device="cpu", compile=False, block_size=64, batch_size=12, n_layer=4, n_head=4,
    n_embd=128, dropout=0.0, bias=False, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100,
    max_iters=1000, lr_decay_iters=1000, eval_interval=250, eval_iters=20, log_interval=250,
)
runs = {
    "baseline": {},
    "zero_value_attn": dict(zero_value_attn=True),
    "untied": dict(tie_dims=0),
    "tie_dims_64": dict(tie_dims=64),
    "cross_layer_kv": dict(cross_layer_kv=True),
    "shared_qk": dict(shared_qk=True),
    "residual_dims_64": dict(residual_dims=64),
    "root_position": dict(residual_root="position"),
    "root_learned": dict(residual_root="learned"),
    "layer_widths_96_160": dict(layer_widths=(96, 160, 160, 96)),
    "layer_windows_8_32": dict(layer_windows=(8, 32, 32, 8)),
    "shared_blocks_2": dict(n_shared_blocks=2),
    "shared_blocks_1": dict(n_shared_blocks=1),
    "attn_sum_power_0.8": dict(attn_sum_power=0.8),
    "attn_sum_power_learned": dict(attn_sum_power_learned=True),
    "prefix_lm": dict(prefix_lm=True),
}
