"""
WikiText (Merity et al. 2016): Wikipedia Good and Featured articles, raw (no <unk>), one article per
document.

    python prepare/wikitext.py                  # hub: Salesforce/wikitext wikitext-103-raw-v1 -> data/wikitext103
    python prepare/wikitext.py --version 2      # wikitext-2-raw-v1 -> data/wikitext2
    python prepare/wikitext.py --data_files ../shared/data/wikitext-2-raw_test.txt   # -> data/wikitext_local

Hub: Salesforce/wikitext, config wikitext-{103,2}-raw-v1, its train and validation splits. Its rows
are lines, as in the original wiki.*.raw files; local files are read the same way (CRLF line endings
become LF, and the tokenized files such as wiki.valid.tokens work too). An article runs from its
top-level heading line ` = Title = ` to the next one (` = = Section = = ` headings stay inside); its
lines are kept exactly as they are (no strip), and the end-of-text token follows each article, so
the articles of a split joined back together are the original text. Text before the first heading
forms a document of its own if it is not blank. See prepare/pipeline.py for the common options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline


def is_title(line):
    """A top-level heading ` = Title = ` (not a section heading ` = = Section = = `)."""
    return line.startswith(" = ") and not line.startswith(" = = ") and line.rstrip().endswith(" =")


SOURCE = pipeline.Source(
    name="wikitext", hub_id="Salesforce/wikitext", hub_splits={"train": "train", "val": "validation"},
    line_rule=is_title, hub_rows_are_lines=True, strip=False)


def add_args(p):
    p.add_argument("--version", choices=["103", "2"], default="103", help="WikiText-103 or WikiText-2 (raw)")


def configure(source, args):
    if args.hub_config is None:
        args.hub_config = f"wikitext-{args.version}-raw-v1"
    name = "wikitext" if args.data_files else f"wikitext{args.version}"
    return pipeline.replace(source, name=name), None


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv, add_args, configure)


if __name__ == "__main__":
    main()
