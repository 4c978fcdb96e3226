# A small GPT on tiny Shakespeare in GPT-2 BPE tokens. Prepare the data first:
#   TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt

out_dir = "out-shakespeare"
dataset = "shakespeare"
eval_interval = 250
eval_iters = 50
log_interval = 10
batch_size = 32
block_size = 128
vocab_size = 50304  # GPT-2's 50257 padded to a multiple of 64

n_layer = 4
n_head = 4
n_embd = 256
dropout = 0.2
bias = False

learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
warmup_iters = 100
