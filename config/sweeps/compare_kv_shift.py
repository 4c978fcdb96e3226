# kv_shift (each head's keys and values mix in the previous token's) against the baseline on text, at the
# recipe of config/sweeps/compare_shakespeare_char.py (64-token context, 1000 iterations), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_kv_shift.py
# docs/variants.md#kv_shift has the results (its recall results: config/sweeps/compare_recall.py).

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
from config.sweeps.compare_shakespeare_char import common, seeds  # noqa: F401 (this config's values too)
name = "kv_shift"
runs = {"baseline": {}, "kv_shift": dict(kv_shift=True)}
