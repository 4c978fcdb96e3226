# How many iterations the variant comparison needs to converge: the baseline of
# config/compare_shakespeare_char.py trained for 5000 iterations and for 4000 (0.8x: its last 20% left out),
# each with its own cosine decayed over it, 3 seeds, val loss on 150 batches (~the val split).
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/compare_shakespeare_char_budget.py --workers=2
# docs/variants.md has the results and the budget they chose.

import os

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
exec(open(os.path.join(os.path.dirname(__file__), "compare_shakespeare_char.py")).read())
name = "shakespeare_char_budget"
common = {**common, "eval_iters": 150}  # noqa: F821 (the recipe's, from the exec above)
runs = {f"steps_{n}": dict(max_iters=n, lr_decay_iters=n, eval_interval=n // 5, log_interval=n // 5)
        for n in (5000, 4000)}
