# Priming that binds (design note 000): the priming corpus of config/sweeps/priming_facts.py, with bias
# layers meant to keep which place belongs to whom (priming_slots: several primed biases per layer, each
# token mixes them), against mean and attention pooling. Screened at 1,500 steps, then 8,000 steps, 3 seeds.
#   python tools/prime.py config/sweeps/priming_binding.py
# Finished runs in out-priming/binding/ are reused; the results go there too (docs/priming.md).

name = "binding"
data = dict(train_docs=50000, val_docs=1000, n_facts="1,2", seed=0)  # prepare/priming.py options
eval_docs = 500
base = dict(  # train.py keys of the base model: the same as config/sweeps/priming_facts.py
    block_size=32, n_layer=3, n_head=4, n_embd=64, dropout=0.0, bias=False, batch_size=32,
    learning_rate=3e-3, min_lr=3e-4, warmup_iters=50, max_iters=4000, lr_decay_iters=4000,
    eval_interval=500, eval_iters=20, log_interval=500,
)
priming = dict(  # train.py keys of the bias layers (the base is frozen): the seed's design, mean pooling
    priming_dim=256, priming_pool="mean", batch_size=32, learning_rate=1e-2, min_lr=1e-3, warmup_iters=50,
    max_iters=1500, lr_decay_iters=1500, eval_interval=500, eval_iters=20, log_interval=500, weight_decay=0.0,
)

variations = {  # screened at 1,500 steps, one seed; then the 8,000-step runs, three seeds each (seeded)
    "attention": dict(priming_pool="attention"),
    "slots_2": dict(priming_pool="attention", priming_slots=2),
    "slots_4": dict(priming_pool="attention", priming_slots=4),
    "slots_4_dim_64": dict(priming_pool="attention", priming_slots=4, priming_dim=64),
    "slots_8": dict(priming_pool="attention", priming_slots=8),
    # the best screened design and the two references, trained 8,000 steps
    "slots_4_8000": dict(priming_pool="attention", priming_slots=4, max_iters=8000, lr_decay_iters=8000,
                         eval_interval=1000, log_interval=1000),
    "mean_8000": dict(max_iters=8000, lr_decay_iters=8000, eval_interval=1000, log_interval=1000),
    "attention_8000": dict(priming_pool="attention", max_iters=8000, lr_decay_iters=8000, eval_interval=1000,
                           log_interval=1000),
}
headline = "attention_8000"  # results.json reports the design that binds best at 8,000 steps
seeded = ("slots_4_8000", "attention_8000")  # three seeds each: train.py's 1337 and these
seeds = (1, 2)
