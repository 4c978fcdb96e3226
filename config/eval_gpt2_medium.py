# Evaluate OpenAI's GPT-2 medium (350M) on OpenWebText, as nanoGPT's eval_gpt2_medium.py does (see config/eval_gpt2.py).
#   python train.py config/eval_gpt2_medium.py
# nanoGPT reports train 2.85, val 2.84 (not reproduced here: no internet on our machines).
init_from = "gpt2-medium"
dataset = "openwebtext"
out_dir = "out-eval-gpt2-medium"  # eval_only writes nothing there
eval_only = True
eval_iters = 500  # batches per split: a good estimate
batch_size = 8
respect_doc_boundaries = False  # random windows anywhere, as nanoGPT samples them
