# Priming that binds (design note 000): the priming corpus of config/sweeps/priming_facts.py, with bias
# layers meant to keep which place belongs to whom (priming_slots: several primed biases per layer, each
# token mixes them), against mean and attention pooling. Screened at 1,500 steps, then 8,000 steps, 3 seeds;
# then attention pooling's capacity: units, bias layers, 16,000 steps.
#   python tools/prime.py config/sweeps/priming_binding.py
# Finished runs in out-priming/binding/ are reused; the results go there too (docs/priming.md).

from config.sweeps.priming_facts import base, data, eval_docs, priming  # noqa: F401 (the same corpus, base and bias layers)

name = "binding"

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
    # where attention pooling saturates: fewer and more units, one bias layer only (one seed each), twice the steps
    "attention_8000_dim_64": dict(priming_pool="attention", priming_dim=64, max_iters=8000, lr_decay_iters=8000,
                                  eval_interval=1000, log_interval=1000),
    "attention_8000_dim_1024": dict(priming_pool="attention", priming_dim=1024, max_iters=8000, lr_decay_iters=8000,
                                    eval_interval=1000, log_interval=1000),
    "attention_8000_last_layer": dict(priming_pool="attention", priming_layers=(2,), max_iters=8000,
                                      lr_decay_iters=8000, eval_interval=1000, log_interval=1000),
    "attention_16000": dict(priming_pool="attention", max_iters=16000, lr_decay_iters=16000, eval_interval=2000,
                            log_interval=2000),
}
headline = "attention_8000"  # results.json reports the design that binds best at 8,000 steps
# three seeds each: train.py's 1337 and these
seeded = ("slots_4_8000", "attention_8000", "attention_16000", "attention_8000_dim_1024")
seeds = (1, 2)
