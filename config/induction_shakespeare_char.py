# Induction heads on natural text (tiny Shakespeare, characters): the models of config/induction_synthetic.py,
# as far as a CPU allows; on a GPU run it longer with --extra, e.g.
#   python tools/induction.py config/induction_shakespeare_char.py
#   python tools/induction.py config/induction_shakespeare_char.py --extra="{'max_iters': 40000, 'lr_decay_iters': 40000, 'device': 'cuda'}"
# docs/induction.md has the results.

name = "shakespeare_char"
prepare = "prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt"
seeds = (0, 1, 2)
common = dict(
    dataset="shakespeare_char", device="cpu", compile=False, block_size=128, batch_size=32, n_head=4, n_embd=128,
    dropout=0.0, bias=False, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=1500,
    lr_decay_iters=1500, eval_interval=100, eval_iters=10, log_interval=500, head_scores=True,
    always_save_checkpoint=True,
)
runs = {
    "attn_only_2l": dict(n_layer=2, attn_only=True),
    "attn_only_1l": dict(n_layer=1, attn_only=True),
    "full_2l": dict(n_layer=2),
}
