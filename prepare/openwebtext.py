"""
OpenWebText (Gokaslan & Cohen 2019): the open replication of GPT-2's WebText, 8M web pages linked from
Reddit; nanoGPT's GPT-2 dataset (config/train_gpt2.py).

    python prepare/openwebtext.py --num_proc 8                       # hub: Skylion007/openwebtext -> data/openwebtext (~9B tokens, ~17 GB)
    python prepare/openwebtext.py --streaming --max_tokens 100000000  # a 100M-token sample without the 54 GB download
    python prepare/openwebtext.py --data_files pages.jsonl             # local: data/openwebtext_local

Hub: Skylion007/openwebtext, split train, column "text". Its repository still holds a loading script,
which `datasets` 4+ refuses ("Dataset scripts are no longer supported"), so it is read from the hub's
Parquet export of it (revision refs/convert/parquet; prepare/pipeline.py). It has no validation split,
so, as in nanoGPT, a small share of pages is held out (--val_fraction 0.0005: every 2000th page). Local files:
.jsonl/.json/.parquet with a "text" column (one page per row), or text files whose pages are
separated by lines `<|endoftext|>` (a file's end also ends a page). Pages are stripped; the end-of-text
token follows each. See prepare/pipeline.py for the common options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline

SOURCE = pipeline.Source(name="openwebtext", hub_id="Skylion007/openwebtext", val_fraction=0.0005)


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv)


if __name__ == "__main__":
    main()
