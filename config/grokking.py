# Grokking (Power et al. 2022) on modular addition, Nanda et al. 2023's setup: a 1-layer transformer
# (128 wide, 4 heads, MLP 512, untied embedding and unembedding), full-batch AdamW with weight decay 1.0
# on 30% of all pairs a + b (mod 113). Train accuracy reaches 1 early; val accuracy much later.
#   python prepare/modular.py
#   python train.py config/grokking.py
# docs/grokking.md has the results, and tools/compare.py config/sweeps/compare_grokking.py the measurements.

out_dir = "out-grokking"
dataset = "modular"
device = "cpu"
compile = False

# the model: `a b =` is the prefix, the answer the only scored target (prefix_lm; in one layer the
# answer's logits are a causal model's: the prefix's positions feed it only through their embeddings)
block_size = 3
n_layer = 1
n_head = 4
n_embd = 128
dropout = 0.0
bias = False
tie_dims = 0
prefix_lm = True

# full-batch AdamW: every training equation in every step, constant lr after a short warmup
full_batch = True
learning_rate = 3e-3  # Nanda et al. use 1e-3; 3e-3 groks in ~500 steps, a few CPU minutes (docs/grokking.md)
weight_decay = 1.0
beta1 = 0.9
beta2 = 0.98
grad_clip = 0.0
decay_lr = False
warmup_iters = 10
max_iters = 1000

# evals on both whole splits (train_acc, val_acc in metrics.jsonl)
eval_iters = 0
eval_interval = 100
log_interval = 100
