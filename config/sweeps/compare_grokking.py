# Tangent Descent (grad_projection="tangent", ⊥Grad) on the grokking benchmark, 3 seeds each:
# AdamW with weight decay 1.0 (config/grokking.py), AdamW without, and tangent without.
# Each run stops at val acc >= 0.95 (target_val_acc) or at 1000 iterations (~4 min on one CPU thread).
#   python prepare/modular.py
#   python tools/compare.py config/sweeps/compare_grokking.py
# docs/grokking.md has the results.

name = "grokking"
seeds = (0, 1, 2)
common = dict(
    dataset="modular", device="cpu", compile=False, block_size=3, n_layer=1, n_head=4, n_embd=128, dropout=0.0,
    bias=False, tie_dims=0, prefix_lm=True, full_batch=True, learning_rate=3e-3, beta1=0.9, beta2=0.98,
    grad_clip=0.0, decay_lr=False, warmup_iters=10, max_iters=1000, eval_iters=0, eval_interval=50,
    log_interval=100, target_val_acc=0.95,
)
runs = {
    "adamw_wd1": dict(weight_decay=1.0),
    "adamw_wd0": dict(weight_decay=0.0),
    "tangent_wd0": dict(grad_projection="tangent", weight_decay=0.0),
}
