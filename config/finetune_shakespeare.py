# Fine-tune OpenAI's GPT-2 XL on tiny Shakespeare (GPT-2 BPE tokens), as nanoGPT's
# finetune_shakespeare.py does: every weight trains, at a small constant learning rate. Prepare the data:
#   TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt
#   python train.py config/finetune_shakespeare.py                       # gpt2-xl: a GPU with ~40 GB
#   python train.py config/finetune_shakespeare.py --init_from=gpt2      # 124M: fits a laptop
#   python sample.py --out_dir=out-shakespeare-ft --start="ROMEO:"
init_from = "gpt2-xl"
dataset = "shakespeare"
out_dir = "out-shakespeare-ft"
eval_interval = 5
eval_iters = 40
always_save_checkpoint = False  # keep only the best val loss: a few steps are enough to overfit
respect_doc_boundaries = False  # random windows anywhere in the play, as nanoGPT samples them

# 32 sequences of 1024 tokens per step: 1 x 32 gradient accumulation steps
batch_size = 1
gradient_accumulation_steps = 32
max_iters = 20

learning_rate = 3e-5  # constant: no warmup, no decay
decay_lr = False
warmup_iters = 0
