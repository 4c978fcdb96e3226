# Seed 004's "effect of training on different datasets": the same small GPT trained on each dataset
# that is available locally, compared in bits per byte (val_bpb), which does not depend on the
# tokenizer (loss per token does): read by compare.py, which trains every run and writes the table
# and plot to plots/compare_datasets/. Prepare the data first, from the repo root (offline):
#
#   export TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache HF_DATASETS_OFFLINE=1
#   python prepare/tinystories.py --data_files ../shared/data/tinystories_validation_head.txt   # data/tinystories_local
#   python prepare/tinystories.py --data_files ../shared/data/tinystories_validation_head.txt --tokenizer char   # data/tinystories_local_char
#   python prepare/wikitext.py --data_files ../shared/data/wikitext-2-raw_test.txt              # data/wikitext_local
#   python prepare/books.py --data_files train=../shared/data/gutenberg_1342_pride_and_prejudice.txt \
#       train=../shared/data/gutenberg_1661_sherlock_holmes.txt val=../shared/data/gutenberg_11_alice_in_wonderland.txt   # data/books_local
#   python prepare/squad.py --data_files ../shared/data/squad-v2.0_dev_cs224n-half.json         # data/squad_local
#   python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt                    # data/shakespeare
#
# These are small samples (0.2M-0.6M GPT-2 tokens each; 600 iterations x 16 x 128 = 1.2M tokens seen,
# so 2-6 passes over each), so the numbers describe the samples, not the full datasets. Every run
# reads windows inside one document (respect_doc_boundaries, the default). tinystories_char is the
# same text in characters: its val_bpb is directly comparable to tinystories'. With the full data
# (prepare/openwebtext.py, prepare/dolma.py, or any script without --data_files), add a run per
# dataset: dict(dataset="openwebtext"), dict(dataset="dolma"), ...
name = "datasets"  # outputs go to plots/compare_datasets/
seeds = [0]  # one run per seed per entry
common = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, max_iters=600,
              lr_decay_iters=600, warmup_iters=50, eval_interval=100, eval_iters=20, dropout=0.0)
runs = {
    "tinystories": dict(dataset="tinystories_local"),
    "tinystories_char": dict(dataset="tinystories_local_char"),
    "wikitext2": dict(dataset="wikitext_local"),
    "books": dict(dataset="books_local"),
    "squad": dict(dataset="squad_local"),
    "shakespeare": dict(dataset="shakespeare"),
}
