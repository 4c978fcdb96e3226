# The priming experiment (design note 000): a frozen base model that has learned to look
# facts up in its context, primed with the document instead of reading it.
#   python tools/prime.py config/sweeps/priming_facts.py
#   python tools/prime.py config/sweeps/priming_facts.py --only="('pool_last',)"     # the main run and one variation
# Finished runs in out-priming/facts/ are reused; the results go there too (docs/priming.md).

name = "facts"
data = dict(train_docs=50000, val_docs=1000, n_facts="1,2", seed=0)  # prepare/priming.py options
eval_docs = 500
headline = "long_8000"  # results.json reports the seed's design (mean pooling) trained longest
base = dict(  # train.py keys of the base model: 3 layers, 64 wide, on the triples
    block_size=32, n_layer=3, n_head=4, n_embd=64, dropout=0.0, bias=False, batch_size=32,
    learning_rate=3e-3, min_lr=3e-4, warmup_iters=50, max_iters=4000, lr_decay_iters=4000,
    eval_interval=500, eval_iters=20, log_interval=500,
)
priming = dict(  # train.py keys of the bias layers (the base is frozen): the seed's design, mean pooling
    priming_dim=256, priming_pool="mean", batch_size=32, learning_rate=1e-2, min_lr=1e-3, warmup_iters=50,
    max_iters=1500, lr_decay_iters=1500, eval_interval=500, eval_iters=20, log_interval=500, weight_decay=0.0,
)
variations = {
    "pool_last": dict(priming_pool="last"),
    "pool_attention": dict(priming_pool="attention"),
    "dim_64": dict(priming_dim=64),
    "shared": dict(priming_shared=True),
    "last_layer_only": dict(priming_layers=(2,)),
    "long_4000": dict(max_iters=4000, lr_decay_iters=4000),  # the main recipe, trained longer
    "long_8000": dict(max_iters=8000, lr_decay_iters=8000, eval_interval=1000, log_interval=1000),
    "long_8000_attention": dict(max_iters=8000, lr_decay_iters=8000, eval_interval=1000, log_interval=1000,
                                priming_pool="attention"),
    "long_8000_shared": dict(max_iters=8000, lr_decay_iters=8000, eval_interval=1000, log_interval=1000,
                             priming_shared=True),
}
