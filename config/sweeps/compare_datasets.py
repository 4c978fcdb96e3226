# Seed 004's "effect of training on different datasets": the same small GPT trained on each dataset
# that is available locally, compared in bits per byte (val_bpb), which does not depend on the
# tokenizer (loss per token does). Run with `python tools/compare.py config/sweeps/compare_datasets.py`, which
# trains every run and writes the table and plots to out-compare/datasets/. Prepare the data first,
# from the repo root (offline):
#
#   export TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache HF_DATASETS_OFFLINE=1
#   python prepare/tinystories.py --data_files ../shared/data/tinystories_validation_head.txt --tokenizer char   # data/tinystories_local_char
#   python prepare/wikitext.py --data_files ../shared/data/wikitext-2-raw_test.txt --tokenizer char              # data/wikitext_local_char
#   python prepare/books.py --tokenizer char --data_files train=../shared/data/gutenberg_1342_pride_and_prejudice.txt \
#       train=../shared/data/gutenberg_1661_sherlock_holmes.txt val=../shared/data/gutenberg_11_alice_in_wonderland.txt   # data/books_local_char
#   python prepare/squad.py --data_files ../shared/data/squad-v2.0_dev_cs224n-half.json --tokenizer char         # data/squad_local_char
#   python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt                              # data/shakespeare_char
#   python prepare/facts.py                                                                                     # data/facts
#
# Characters, not GPT-2 BPE: at this size a 50k-token head makes each step ~30x slower on a CPU (4 s
# instead of 0.13 s here), and bits per byte make the two comparable anyway. For BPE runs, prepare
# without --tokenizer char (data/<name>_local) and add e.g. "tinystories_bpe": dict(dataset="tinystories_local").
# These are small samples (0.7M-2.5M characters; 600 iterations x 16 x 128 = 1.2M characters seen),
# so the numbers describe the samples, not the full datasets. Windows stay inside one document
# (respect_doc_boundaries, the default). With the full data (prepare/openwebtext.py,
# prepare/dolma.py, or any script without --data_files), add a run per dataset.
name = "datasets"  # runs and results go to out-compare/datasets/
seeds = [0]  # one run per seed per entry
common = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, max_iters=600,
              lr_decay_iters=600, warmup_iters=50, eval_interval=100, eval_iters=20, dropout=0.0,
              learning_rate=2e-3, min_lr=2e-4)
runs = {
    "tinystories": dict(dataset="tinystories_local_char"),
    "wikitext2": dict(dataset="wikitext_local_char"),
    "books": dict(dataset="books_local_char"),
    "squad": dict(dataset="squad_local_char"),
    "shakespeare": dict(dataset="shakespeare_char"),
    "facts": dict(dataset="facts"),
}
