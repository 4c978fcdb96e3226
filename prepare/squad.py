"""
SQuAD 2.0 (Rajpurkar et al. 2018) as "preloaded context" examples (design note 004): a Wikipedia
paragraph, then a question about it, then its answer, the paragraph recorded as the prefix.

    python prepare/squad.py                                    # hub: rajpurkar/squad_v2 -> data/squad
    python prepare/squad.py --data_files ../shared/data/squad-v2.0_dev_cs224n-half.json   # -> data/squad_local

One document per (paragraph, question) pair, laid out as

    <context>
    Q: <question>
    A: <answer>
    [the end-of-text token]

The prefix is the context and its newline, everything before "Q:", counted in tokens exactly (the
prefix and the rest are tokenized separately, so decoding the first prefix-length tokens gives the
context back; prefix_lm and answer-only loss use it). Context, question and answer are stripped; the
answer is the first of the listed answers (answers.text[0]). A paragraph with several questions
appears once per question. Unanswerable questions (SQuAD 2.0's is_impossible, no answers) are left
out by default; --unanswerable keep writes them with the answer "unanswerable".

Hub: rajpurkar/squad_v2, its train and validation splits (flat rows: context, question, answers).
Local files: the official nested JSON (train-v2.0.json, dev-v2.0.json, v1.1 too), or JSON lines of
flat rows like the hub's. A local file is split by paragraph: every 10th paragraph (--val_fraction)
goes to val with all its questions, so no val context is seen in training. See prepare/pipeline.py
for the common options.
"""


if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare import pipeline

NO_ANSWER = "unanswerable"


def example(context, question, answers, keep_unanswerable):
    """The Doc of one question, or None for an unanswerable one that is left out."""
    if not answers and not keep_unanswerable:
        return None
    answer = answers[0].strip() if answers else NO_ANSWER
    context = context.strip()
    return pipeline.Doc(text=f"Q: {question.strip()}\nA: {answer}\n", prefix=context + "\n", group=context)


def row_docs(row, keep_unanswerable):
    """Docs of a hub row (one question) or of an article of the nested JSON (all its questions)."""
    if "paragraphs" in row:
        qas = [(p["context"], qa["question"], [a["text"] for a in qa.get("answers") or []])
               for p in row["paragraphs"] for qa in p["qas"]]
    else:
        qas = [(row["context"], row["question"], list(row["answers"]["text"]))]
    docs = (example(c, q, a, keep_unanswerable) for c, q, a in qas)
    return [d for d in docs if d is not None]


SOURCE = pipeline.Source(name="squad", hub_id="rajpurkar/squad_v2", hub_splits={"train": "train", "val": "validation"},
                         json_field="data", strip=False)


def add_args(p):
    p.add_argument("--unanswerable", choices=["skip", "keep"], default="skip",
                   help=f"leave out unanswerable questions, or keep them with the answer {NO_ANSWER!r}")


def configure(source, args):
    keep = args.unanswerable == "keep"
    return pipeline.replace(source, to_docs=lambda row: row_docs(row, keep)), {"unanswerable": args.unanswerable}


def main(argv=None):
    return pipeline.main(SOURCE, __doc__, argv, add_args, configure)


if __name__ == "__main__":
    main()
