# attn_gate (a sigmoid gate per head and token on the attention output) against the baseline, at the
# recipe of config/sweeps/compare_shakespeare_char.py (64-token context, 1000 iterations), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_attn_gate.py
# docs/variants.md has the results.

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
from config.sweeps.compare_shakespeare_char import common, seeds  # noqa: F401 (this config's values too)
name = "attn_gate"
runs = {"baseline": {}, "attn_gate": dict(attn_gate=True)}
