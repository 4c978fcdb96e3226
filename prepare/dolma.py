"""
Dolma (Soldaini et al. 2024): AI2's open pretraining corpus (web, code, papers, books, Wikipedia,
Reddit...), 3 trillion tokens; this takes a streamed sample, never the whole.

    python prepare/dolma.py --max_tokens 100000000      # 100M tokens from 8 files of v1_6-sample -> data/dolma
    python prepare/dolma.py --hub_config v1_7 --n_files 32 --max_tokens 1000000000
    python prepare/dolma.py --data_files part-0.json.gz part-1.json.gz   # local: data/dolma_local

Hub: allenai/dolma. Its repository holds, for each version, a list of the data files' URLs
(urls/<version>.txt: gzipped JSON lines with "id", "text", "source", ...), which its loading script
downloads; `datasets` 4+ no longer runs loading scripts, so this script reads the list itself
(huggingface_hub) and streams --n_files of those files (spread evenly over the list, so several
sources are represented) with the `datasets` json builder, one document from each file in turn,
stopping at --max_tokens. The default version is v1_6-sample (~10B tokens, 16 GB gzipped). Dolma has
no validation split: every 10th document is held out (--val_fraction). Local files are read the same
way (.json.gz/.jsonl/.parquet with a "text" column; text files split at `<|endoftext|>` lines and at
their ends), one document from each file in turn. Documents are stripped; the end-of-text token
follows each. See prepare/pipeline.py for the common options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline


def hub_files(args, hint):
    """URLs of --n_files data files of the version's list, spread evenly over it."""
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(args.hub_id, f"urls/{args.hub_config}.txt", repo_type="dataset")
        with open(path) as f:
            urls = [u.strip() for u in f if u.strip()]
    except Exception as e:
        pipeline.fail(f"could not read the file list urls/{args.hub_config}.txt of {args.hub_id} "
                      f"({pipeline.one_line(e)}); {hint}")
    n = min(args.n_files, len(urls))
    return [urls[i * len(urls) // n] for i in range(n)]


SOURCE = pipeline.Source(name="dolma", hub_id="allenai/dolma", hub_config="v1_6-sample", streaming=True,
                         interleave=True, hub_files=hub_files)


def add_args(p):
    p.add_argument("--n_files", type=int, default=8, help="how many of the version's files to stream from")


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv, add_args)


if __name__ == "__main__":
    main()
