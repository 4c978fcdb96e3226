# LoRA fine-tuning of OpenAI's GPT-2 (124M) on tiny Shakespeare: the weights stay frozen, and only rank-8
# adapters on every attention and MLP matrix train (1.2M numbers, under 1% of the model). ckpt.pt holds
# the adapters and a reference to gpt2 (14 MB, not 512; docs/checkpoints.md). Prepare the data:
#   TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt
#   python train.py config/finetune_shakespeare_lora.py
#   python tools/export.py --out_dir=out-shakespeare-lora --to=hf-shakespeare-lora   # adapters merged in
init_from = "gpt2"
dataset = "shakespeare"
out_dir = "out-shakespeare-lora"
lora_rank = 8
lora_alpha = 16.0
eval_interval = 25
eval_iters = 20
always_save_checkpoint = False
respect_doc_boundaries = False

block_size = 256  # cropped from GPT-2's 1024 positions, so a CPU can run it
batch_size = 4
gradient_accumulation_steps = 4
max_iters = 200

learning_rate = 1e-3  # adapters take a larger rate than full fine-tuning
decay_lr = True
warmup_iters = 20
lr_decay_iters = 200
min_lr = 1e-4
weight_decay = 0.0
