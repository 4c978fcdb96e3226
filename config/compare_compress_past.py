# compress_past (keys/values older than the W most recent positions averaged in pairs) against the
# baseline, at the recipe of config/compare_shakespeare_char.py (64-token context, 1000 iterations), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/compare_compress_past.py
# docs/variants.md has the results.

name = "compress_past"
seeds = (0, 1, 2)
common = dict(
    dataset="shakespeare_char", device="cpu", compile=False, block_size=64, batch_size=12, n_layer=4, n_head=4,
    n_embd=128, dropout=0.0, bias=False, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100,
    max_iters=1000, lr_decay_iters=1000, eval_interval=250, eval_iters=20, log_interval=250,
)
runs = {
    "baseline": {},
    "compress_past_16": dict(compress_past=16),
    "compress_past_32": dict(compress_past=32),
}
