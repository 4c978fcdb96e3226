# Associative recall (prepare/recall.py: two key-value pairs, then three questions that give a key): does GPT-2
# learn to bind a value to its key, and does kv_shift (each key also carries the token before it) make it
# learn sooner? 2 and 4 layers, 3 seeds, 3,000 steps. The answers sit at positions 7, 11 and 15 of the
# 18-token window: position_loss.png shows recall there (0 when bound, about ln 2 when a value is picked at
# random). docs/variants.md#kv_shift has the results.
#   python prepare/recall.py
#   python tools/compare.py config/sweeps/compare_recall.py
name = "recall"
seeds = (0, 1, 2)
common = dict(dataset="recall", device="cpu", compile=False, block_size=18, batch_size=64, n_head=4, n_embd=64,
              dropout=0.0, bias=False, learning_rate=3e-3, min_lr=3e-4, warmup_iters=50, max_iters=3000,
              lr_decay_iters=3000, weight_decay=0.0, eval_interval=250, eval_iters=10, log_interval=500)
runs = {
    "baseline": dict(n_layer=2),
    "kv_shift": dict(n_layer=2, kv_shift=True),
    "baseline_4l": dict(n_layer=4),
    "kv_shift_4l": dict(n_layer=4, kv_shift=True),
}
