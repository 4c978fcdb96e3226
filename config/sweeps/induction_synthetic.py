# Induction heads on random tokens whose segments repeat at random distances and lengths (prepare/induction.py):
# a 1-layer and a 2-layer attention-only model and a 2-layer full model, 3 seeds. docs/induction.md has the results.
#   python tools/induction.py config/sweeps/induction_synthetic.py

name = "synthetic"
prepare = "prepare/induction.py"  # its defaults: 128 tokens, 65-token documents, 35% of targets in a repeat
seeds = (0, 1, 2)
common = dict(
    dataset="induction", device="cpu", compile=False, block_size=64, batch_size=64, n_head=4, n_embd=64,
    dropout=0.0, bias=False, learning_rate=3e-3, min_lr=3e-4, warmup_iters=100, max_iters=3000,
    lr_decay_iters=3000, eval_interval=100, eval_iters=10, log_interval=500, head_scores=True,
    always_save_checkpoint=True,
)
runs = {
    "attn_only_2l": dict(n_layer=2, attn_only=True),
    "attn_only_1l": dict(n_layer=1, attn_only=True),
    "full_2l": dict(n_layer=2),
}
