# config/sweeps/compare_vocab.py at three times the budget (3,000 character steps, the others the same time),
# for characters and the best two BPEs, two seeds: does the order hold when the runs are longer?
#   OMP_NUM_THREADS=1 python tools/compare.py config/sweeps/compare_vocab_long.py
# docs/datasets.md has the results.
from config.sweeps.compare_vocab import _keys, baseline, common  # noqa: F401 (this config's values too)

name = "vocab_long"
seeds = (0, 1)
runs = {run: _keys(run, 3000) for run in ("bpe_8192", "bpe_512", "char")}
