# The knowledge table with the priming arm given the budget the priming corpus needed (docs/knowledge.md#priming-trained-8000-steps):
# the bias layers train 8,000 steps instead of 600, with attention pooling (docs/priming.md, the best recipe there);
# every other arm and key as config/sweeps/knowledge.py; 3 seeds.
#   python tools/knowledge.py config/sweeps/knowledge_priming.py

from config.sweeps.knowledge import base, data, forgetting, lora, priming, retrieval_k, seeds  # noqa: F401 (this config's values too)

name = "world_priming"
priming = {**priming, "priming_pool": "attention", "max_iters": 8000, "lr_decay_iters": 8000, "eval_interval": 1000,
           "log_interval": 1000}
