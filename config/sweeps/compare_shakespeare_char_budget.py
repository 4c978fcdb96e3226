# How many iterations the variant comparison needs to converge: the baseline of config/sweeps/compare_shakespeare_char.py
# trained for budgets B and 0.8 B (its last 20% left out), each with its own cosine decayed over it, val loss on
# 150 batches (~the val split). A budget has converged when B and 0.8 B end within the seed noise.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_shakespeare_char_budget.py --seeds="(0,)" --workers=2   # every budget, seed 0
#   python tools/compare.py config/sweeps/compare_shakespeare_char_budget.py --only="('steps_8000',)"     # 10,000 and 8,000, 3 seeds
# docs/variants.md has the results and the budget they chose.

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
from config.sweeps.compare_shakespeare_char import common, seeds  # noqa: F401 (this config's values too)
name = "shakespeare_char_budget"
common = {**common, "eval_iters": 150}
# longest first, so that parallel workers start the longest runs first
runs = {f"steps_{n}": dict(max_iters=n, lr_decay_iters=n, eval_interval=n // 5, log_interval=n // 5)
        for n in (20000, 16000, 10000, 8000, 5000, 4000)}
baseline = "steps_10000"
