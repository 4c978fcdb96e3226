# Tangent Descent (grad_projection="tangent", ⊥Grad) against the baseline on a language model: the recipe
# of config/compare_shakespeare_char.py (4 layers, 128 wide, 1000 iterations, weight decay 0.1), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/compare_shakespeare_char_tangent.py
# docs/grokking.md has the results.

name = "shakespeare_char_tangent"
seeds = (0, 1, 2)
common = dict(
    dataset="shakespeare_char", device="cpu", compile=False, block_size=64, batch_size=12, n_layer=4, n_head=4,
    n_embd=128, dropout=0.0, bias=False, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100,
    max_iters=1000, lr_decay_iters=1000, eval_interval=250, eval_iters=20, log_interval=250,
)
runs = {
    "baseline": {},
    "tangent": dict(grad_projection="tangent"),
}
