"""
TinyStories (Eldan & Li 2023): short stories in simple English written by GPT-3.5/4, for small models.

    python prepare/tinystories.py                       # hub: roneneldan/TinyStories -> data/tinystories
    python prepare/tinystories.py --max_tokens 20000000 --streaming   # a 20M-token sample, no full download
    python prepare/tinystories.py --data_files ../shared/data/tinystories_validation_head.txt   # -> data/tinystories_local

Hub: roneneldan/TinyStories, its train and validation splits, one story per row (column "text").
Local text files: the official .txt format separates stories by a line `<|endoftext|>`
(TinyStories-train.txt, TinyStoriesV2-GPT4-*.txt, the cs336 sample). A text without those marks (the
validation head in ../shared/data: a blank line after every story, but also between paragraphs) is
cut before every line that begins "Once upon a time"; a story that starts otherwise stays joined to
the one before (no story is cut in two unless it has such a paragraph inside). Stories are stripped;
the end-of-text token follows each one. See prepare/pipeline.py for the options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline

SOURCE = pipeline.Source(
    name="tinystories", hub_id="roneneldan/TinyStories", hub_splits={"train": "train", "val": "validation"},
    line_rule=lambda line: line.startswith("Once upon a time"))


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv)


if __name__ == "__main__":
    main()
