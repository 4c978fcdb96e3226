# GPT-2 (124M) on OpenWebText, nanoGPT's recipe: ~0.5M tokens per step, 600k steps (~2.85 val loss).
# On one node of 8 GPUs:  torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
# Prepare the data first: python prepare/openwebtext.py

out_dir = "out-gpt2"
dataset = "openwebtext"
respect_doc_boundaries = False  # nanoGPT's windows: anywhere in the token stream, across documents

# 12 batch size * 1024 block size * 40 gradaccum (split over the processes) = 491,520 tokens per step
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8
vocab_size = 50304

n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0
bias = False

learning_rate = 6e-4
max_iters = 600000
lr_decay_iters = 600000
min_lr = 6e-5
beta2 = 0.95
warmup_iters = 2000
weight_decay = 0.1

eval_interval = 1000
eval_iters = 200
log_interval = 10
compile = True
