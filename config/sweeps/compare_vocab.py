# Which vocabulary gives the best val bits per byte on tiny Shakespeare for the same CPU time: characters,
# byte-level BPEs of 512, 2048 and 8192 tokens trained on the train split (prepare/shakespeare.py
# --tokenizer=bpe), and GPT-2's 50,257. One model recipe for all (config/train_shakespeare_char_fast.py:
# 4 layers, 128 wide, Muon), its vocab_size from the data, and the same context in tokens (64): a bigger
# vocabulary sees more text per window, which is part of what it buys. Bits per byte do not depend on the
# tokenizer (loss per token does). docs/datasets.md has the results.
#   export TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt              # data/shakespeare_char
#   python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt                   # data/shakespeare (GPT-2)
#   for v in 512 2048 8192; do python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt \
#       --tokenizer=bpe --vocab_size=$v; done                                                   # data/shakespeare_bpe<v>
#   OMP_NUM_THREADS=1 python tools/compare.py config/sweeps/compare_vocab.py --bench=True      # ms/iter of each (bench.md)
#   OMP_NUM_THREADS=1 python tools/compare.py config/sweeps/compare_vocab.py                   # the table, 3 seeds
#
# Equal CPU time: a step's cost grows with the vocabulary (the output layer and its softmax), so each run gets
# the iterations that take as long as the characters' _CHAR_ITERS. _STEP_COST is each run's step time over the
# characters', from the --bench command above (bench.md: each run's steps alternate with the characters' in one
# process, so the ratio holds on a loaded machine); each run's cosine schedule decays over its own iterations.
# A budget of 1,000 character steps: the 15 runs took 89 min of run time, two at a time on a loaded 2-core machine.
# Evals (train and
# val, the recipe's 20 batches each, at 0, at 80% of a run and at its end: the late change says whether a
# run still improves) come on top and cost more for the larger vocabularies (GPT-2's: ~9x a character eval).
import config.train_shakespeare_char_fast as fast

name = "vocab"  # runs and results go to out-compare/vocab/
seeds = (0, 1, 2)
# the recipe's keys, less its run-specific ones (target loss, schedule length, where it writes)
common = {k: v for k, v in vars(fast).items() if not k.startswith("_") and k not in (
    "out_dir", "dataset", "target_val_loss", "max_iters", "lr_decay_iters", "eval_interval", "log_interval")}
_CHAR_ITERS = 1000  # the characters' budget; the others get the same time
_STEP_COST = {"char": 1.0, "bpe_512": 1.02, "bpe_2048": 1.19, "bpe_8192": 1.90, "gpt2": 9.38}  # x the characters'
_DATASETS = {"char": "shakespeare_char", "bpe_512": "shakespeare_bpe512", "bpe_2048": "shakespeare_bpe2048",
             "bpe_8192": "shakespeare_bpe8192", "gpt2": "shakespeare"}


def _keys(run, char_iters=_CHAR_ITERS):
    n = round(char_iters / _STEP_COST[run] / 10) * 10  # iterations, a multiple of 10 so that 80% is whole
    return dict(dataset=_DATASETS[run], max_iters=n, lr_decay_iters=n, eval_interval=n * 4 // 5, log_interval=n // 5)


# the slowest first, so that the two workers finish together
runs = {run: _keys(run) for run in ("gpt2", "bpe_8192", "bpe_2048", "bpe_512", "char")}
baseline = "char"
