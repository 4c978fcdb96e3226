"""
Any local text, through the same path as the other datasets.

    python prepare/text.py --input notes/*.txt                      # -> data/text
    python prepare/text.py --input a.txt b.txt --doc_sep blank --name mytext --tokenizer char

Documents: `<|endoftext|>` (anywhere in a line) separates documents and the end of a file ends one;
--doc_sep blank also cuts at blank lines, --doc_sep line makes every line a document. Documents are
stripped, whitespace-only ones dropped, and the end-of-text token follows each (with a tiktoken
tokenizer). A file without any separator is one document, held in memory while it is tokenized.
Every 10th document is held out for val (--val_fraction); a source with too few documents for that
(one book) holds out the last 10% of its text instead, from the start of a line. Or give files a
split with `--input train=a.txt val=b.txt`. .jsonl/.json/.parquet files are read by their "text" column.
See prepare/pipeline.py for the common options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline

RULES = {"eot": None, "blank": lambda line: not line.strip(), "line": lambda line: True}
SOURCE = pipeline.Source(name="text")


def add_args(p):
    p.add_argument("--input", nargs="+", metavar="FILE", help="the text files (same as --data_files)")
    p.add_argument("--doc_sep", choices=list(RULES), default="eot", help="what else separates documents")
    p.add_argument("--name", default="text", help="the dataset's name: data/<name>")


def configure(source, args):
    args.data_files = (args.data_files or []) + (args.input or [])
    if not args.data_files:
        pipeline.fail("pass the text files: --input FILE...")
    return pipeline.replace(source, name=args.name, line_rule=RULES[args.doc_sep]), {"doc_sep": args.doc_sep}


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv, add_args, configure)


if __name__ == "__main__":
    main()
