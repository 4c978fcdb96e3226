# Induction heads on natural text (tiny Shakespeare, characters): the three models of
# config/sweeps/induction_synthetic.py, at a context of 128 and 128 wide, as far as a CPU allows (1500 steps,
# 6M tokens); on a GPU run it longer with --extra, e.g.
#   python tools/induction.py config/sweeps/induction_shakespeare_char.py
#   python tools/induction.py config/sweeps/induction_shakespeare_char.py --extra="{'max_iters': 40000, 'lr_decay_iters': 40000, 'device': 'cuda'}"
# docs/induction.md has the results.

# the synthetic setting's seeds, runs and shared keys (its name, data and sizes are replaced below)
from config.sweeps.induction_synthetic import common, runs, seeds  # noqa: F401 (this config's values too)
name = "shakespeare_char"
prepare = "prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt"
common = dict(common, dataset="shakespeare_char", block_size=128, batch_size=32, n_embd=128,
              learning_rate=1e-3, min_lr=1e-4, max_iters=1500, lr_decay_iters=1500)
