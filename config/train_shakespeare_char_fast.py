# nanoGPT's CPU recipe made fast: the same data, val split, context (block_size 64), batch (12 x 64)
# and eval batches (20 of 12 sequences), with the modern pieces and a schedule short enough to stop
# at the recipe's loss. docs/speed.md has the race against the recipe and how this schedule was chosen.
#
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
#   python train.py config/train_shakespeare_char_fast.py                  # stops at val loss <= 1.886

out_dir = "out-shakespeare-char-fast"
dataset = "shakespeare_char"
device = "cpu"
compile = False  # on a CPU compiling costs more than it saves in a run this short (docs/speed.md)
target_val_loss = 1.886  # nanoGPT's reported val loss for its recipe: stop at the first eval at or below it

# the recipe's data and evals
block_size = 64
batch_size = 12
gradient_accumulation_steps = 1
eval_iters = 20
log_interval = 50
always_save_checkpoint = False

# the recipe's model size...
n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
bias = False
# ...with the modern pieces (model.py)
rotary = True  # positions in the attention scores; no position table
qk_norm = True  # normalised queries and keys: stable at Muon's learning rates
zero_init_proj = True  # every block starts as the identity
layer_windows = (8, 32, 32, 8)  # local attention in the first and last layers: the best variant (docs/variants.md)

# Muon on the hidden matrices, AdamW (the recipe's settings) on embeddings, gains and biases
optimizer = "muon"
muon_lr = 0.02
learning_rate = 1e-3
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.99
grad_clip = 1.0

# a schedule that ends just past the target (an eval costs ~12 training steps: only at 0 and the end)
max_iters = 400
lr_decay_iters = 400
warmup_iters = 50
min_lr = 1e-4
eval_interval = 400
