# Evaluate OpenAI's GPT-2 xl (1558M) on OpenWebText, as nanoGPT's eval_gpt2_xl.py does (see config/eval_gpt2.py).
#   python train.py config/eval_gpt2_xl.py
# nanoGPT reports train 2.56, val 2.54 (not reproduced here: no internet on our machines).
init_from = "gpt2-xl"
dataset = "openwebtext"
out_dir = "out-eval-gpt2-xl"  # eval_only writes nothing there
eval_only = True
eval_iters = 500  # batches per split: a good estimate
batch_size = 8
respect_doc_boundaries = False  # random windows anywhere, as nanoGPT samples them
