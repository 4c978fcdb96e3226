# compress_past (keys/values older than the W most recent positions averaged in pairs) against the
# baseline, at the recipe of config/sweeps/compare_shakespeare_char.py (64-token context, 1000 iterations), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_compress_past.py
# docs/variants.md has the results.

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
from config.sweeps.compare_shakespeare_char import common, seeds  # noqa: F401 (this config's values too)
name = "compress_past"
runs = {
    "baseline": {},
    "compress_past_16": dict(compress_past=16),
    "compress_past_32": dict(compress_past=32),
}
