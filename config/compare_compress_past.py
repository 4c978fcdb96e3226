# compress_past (keys/values older than the W most recent positions averaged in pairs) against the
# baseline, at the recipe of config/compare_shakespeare_char.py (64-token context, 1000 iterations), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/compare_compress_past.py
# docs/variants.md has the results.

import os

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
exec(open(os.path.join(os.path.dirname(__file__), "compare_shakespeare_char.py")).read())
name = "compress_past"
runs = {
    "baseline": {},
    "compress_past_16": dict(compress_past=16),
    "compress_past_32": dict(compress_past=32),
}
