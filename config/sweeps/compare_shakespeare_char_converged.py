# The variant comparison at a longer budget: config/sweeps/compare_shakespeare_char.py's recipe and runs, trained
# for 5,000 iterations instead of 1,000 (the cosine decayed over them), val loss on 150 batches (~the val split).
# The budget comes from the baseline's learning curve (config/sweeps/compare_shakespeare_char_budget.py), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_shakespeare_char_converged.py --workers=2
# docs/variants.md has the results beside the 1,000-iteration ones.

# the variant comparison's recipe: its seeds, common keys and runs (its name and budget are replaced below)
from config.sweeps.compare_shakespeare_char import common, runs, seeds  # noqa: F401 (this config's values too)
name = "shakespeare_char_converged"
_budget = 5000  # iterations
common = {**common, "max_iters": _budget, "lr_decay_iters": _budget, "eval_interval": _budget // 5,
          "log_interval": _budget // 5, "eval_iters": 150}
