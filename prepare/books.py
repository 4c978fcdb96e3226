"""
Books: PG-19 (Rae et al. 2019), 28,752 Project Gutenberg books published before 1919, one book per
document.

    python prepare/books.py --streaming --max_tokens 50000000    # hub: emozilla/pg19 -> data/books
    python prepare/books.py --data_files ../shared/data/gutenberg_*.txt --val_fraction 0.34   # -> data/books_local

Why PG-19: it is public domain (BookCorpus, the other well-known book corpus, is copyrighted and its
hub copies are unmaintained), it is the standard long-document language-modelling benchmark with fixed
train/validation/test splits by book, and it comes from Project Gutenberg like the local sample. The
canonical copy, deepmind/pg19, is built by a loading script that `datasets` 4+ no longer runs, so the
default is emozilla/pg19, a Parquet copy with the same splits and columns (text, short_book_title,
publication_date, url); --hub_id deepmind/pg19 selects the original where it loads.

Hub: the train and validation splits (validation: 50 books), column "text". Local files: one file is
one book, stripped of surrounding blank lines (give the plain text of the book, like the
gutenbergbooks/ mirror's or PG-19's, without the licence header). With few books use a --val_fraction
that holds out whole books: 0.34 keeps one of the three local books for val. See
prepare/pipeline.py for the common options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline

SOURCE = pipeline.Source(name="books", hub_id="emozilla/pg19", hub_splits={"train": "train", "val": "validation"},
                         line_rule=None)


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv)


if __name__ == "__main__":
    main()
