# Tangent Descent (grad_projection="tangent", ⊥Grad) against the baseline on a language model: the recipe
# of config/sweeps/compare_shakespeare_char.py (4 layers, 128 wide, 1000 iterations, weight decay 0.1), 3 seeds.
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python tools/compare.py config/sweeps/compare_shakespeare_char_tangent.py
# docs/grokking.md has the results.

# the variant comparison's recipe: its seeds and common keys (its name and runs are replaced below)
from config.sweeps.compare_shakespeare_char import common, seeds  # noqa: F401 (this config's values too)
name = "shakespeare_char_tangent"
runs = {
    "baseline": {},
    "tangent": dict(grad_projection="tangent"),
}
