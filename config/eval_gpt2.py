# Evaluate OpenAI's GPT-2 (124M) on OpenWebText, as nanoGPT's eval_gpt2.py does; it downloads the
# weights. Prepare the data first (a download of ~54 GB): python prepare/openwebtext.py
#   python train.py config/eval_gpt2.py
# nanoGPT reports train 3.11, val 3.12 for gpt2 (not reproduced here: no internet on our machines).
init_from = "gpt2"
dataset = "openwebtext"
out_dir = "out-eval-gpt2"  # eval_only writes nothing there
eval_only = True
eval_iters = 500  # batches per split: a good estimate
batch_size = 8
respect_doc_boundaries = False  # random windows anywhere, as nanoGPT samples them
