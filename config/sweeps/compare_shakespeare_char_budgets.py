# Budget curves and compute multipliers: config/sweeps/compare_shakespeare_char.py's recipe, each run and seed trained
# once to 8,000 iterations with the warmup-stable-decay schedule, a 20% cooldown branched off it at 1,000, 2,000 and
# 4,000; val loss on 150 batches (~the val split). docs/variants.md, "Budget curves and compute multipliers".
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_shakespeare_char_budgets.py --bench=True       # ms/iter of each run
#   python tools/compare.py config/sweeps/compare_shakespeare_char_budgets.py --workers=2        # 10 runs x 3 seeds
#   python tools/compare.py config/sweeps/compare_shakespeare_char_budgets.py --budgets="(500,1000,2000)" --only="('layer_windows_8_32',)"

# the variant comparison's recipe: its seeds, common keys and runs (its name and budgets are set below)
from config.sweeps.compare_shakespeare_char import common, seeds  # noqa: F401 (this config's values too)
from config.sweeps.compare_shakespeare_char import runs as _every_run

name = "shakespeare_char_budgets"
common = {**common, "eval_iters": 150, "eval_interval": 500, "log_interval": 500}
budgets = (1000, 2000, 4000, 8000)
runs = {run: _every_run[run] for run in ("baseline", "untied", "residual_dims_64", "root_position", "layer_widths_96_160",
                                         "layer_windows_8_32", "shared_blocks_2", "shared_blocks_1", "prefix_lm",
                                         "shared_qk")}
