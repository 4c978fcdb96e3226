# Does a base model bind on the priming corpus with kv_shift (docs/variants.md#kv_shift)? The base of
# config/sweeps/priming_binding.py with kv_shift=True; its bias layers train only 300 steps, since the
# question is the base's in-context answers on two-fact documents (docs/priming.md).
#   python tools/prime.py config/sweeps/priming_base_binding.py

name = "base_kv_shift"
data = dict(train_docs=50000, val_docs=1000, n_facts="1,2", seed=0)  # prepare/priming.py options
eval_docs = 500
base = dict(  # train.py keys of the base model: priming_binding's, with kv_shift
    block_size=32, n_layer=3, n_head=4, n_embd=64, dropout=0.0, bias=False, batch_size=32,
    learning_rate=3e-3, min_lr=3e-4, warmup_iters=50, max_iters=4000, lr_decay_iters=4000,
    eval_interval=500, eval_iters=20, log_interval=500, kv_shift=True,
)
priming = dict(  # a short bias-layer run: tools/prime.py needs one to report the base's conditions
    priming_dim=256, priming_pool="mean", batch_size=32, learning_rate=1e-2, min_lr=1e-3, warmup_iters=50,
    max_iters=300, lr_decay_iters=300, eval_interval=300, eval_iters=20, log_interval=300, weight_decay=0.0,
)
