"""
The "preloaded context" corpus (design note 004), generated from a seed with no download. It is the
default dataset of `python train.py` and a research dataset in its own right.

Each document is a block of facts about invented people, then questions whose answers can only come
from those facts:

    Vorin Kelta lives in Dashmur, works as a potter and keeps a grey owl.
    Mibe Saro lives in Tulvek, works as a baker and keeps a red fox.
    Q: Where does Mibe Saro live? A: Tulvek.
    Q: What does Vorin Kelta keep? A: a grey owl.

Names and places are drawn fresh for every document from random syllables, so nothing can be
memorized: a model can only answer by reading the facts (in-context retrieval). Jobs and pets come
from short lists, so those answers are partly guessable; places never are. Train and val differ in
their documents (different seeds). The facts block is recorded as each document's prefix, for
prefix-LM and answer-only-loss experiments. What to look for: per-position loss falling along the
sequence as the model learns to copy from the facts, and answer tokens far below chance.

    python prepare/facts.py                      # data/facts, char tokens
    python prepare/facts.py --tokenizer gpt2     # GPT-2 BPE instead
"""

import argparse
import random
import sys
import string

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import CharTokenizer, TiktokenTokenizer, default_out_dir, write_dataset

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
JOBS = ["baker", "potter", "farmer", "sailor", "weaver", "miller", "smith", "tailor", "mason", "healer"]
COLORS = ["red", "grey", "black", "white", "brown", "green", "blue", "gold"]
ANIMALS = ["owl", "fox", "cat", "dog", "goat", "crow", "hare", "frog"]
# a fixed character set, so the char vocabulary does not depend on the seed or the corpus size
ALPHABET = sorted(set(string.ascii_letters + " .,?:\n"))


def invent_word(rng, syllables):
    w = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables))
    return (w + rng.choice(CONSONANTS) if rng.random() < 0.5 else w).capitalize()


def make_document(rng, n_people=(2, 3), n_questions=3):
    """One document as {"facts": str, "qa": [(question, answer), ...]} (answers without the period)."""
    people = []
    while len(people) < rng.randint(*n_people):
        name = f"{invent_word(rng, 2)} {invent_word(rng, 2)}"
        if name not in (p["name"] for p in people):
            people.append({"name": name, "place": invent_word(rng, rng.choice((2, 3))),
                           "job": rng.choice(JOBS), "pet": f"a {rng.choice(COLORS)} {rng.choice(ANIMALS)}"})
    facts = "".join(f"{p['name']} lives in {p['place']}, works as a {p['job']} and keeps {p['pet']}.\n"
                    for p in people)
    asks = [("Where does {} live?", "place"), ("What does {} do?", "job"), ("What does {} keep?", "pet")]
    qa = []
    for _ in range(n_questions):
        p, (q, key) = rng.choice(people), rng.choice(asks)
        qa.append((q.format(p["name"]), p[key]))
    return {"facts": facts, "qa": qa}


def render(doc):
    """(full text, prefix text): the facts block is the prefix, the questions and answers follow."""
    questions = "".join(f"Q: {q} A: {a}.\n" for q, a in doc["qa"])
    return doc["facts"] + questions + "\n", doc["facts"]


def documents(n, seed, tokenizer):
    """(token ids, prefix length in tokens, n_bytes) for n documents drawn from `seed`."""
    rng = random.Random(seed)
    for _ in range(n):
        text, prefix = render(make_document(rng))
        yield tokenizer.encode(text), len(tokenizer.encode(prefix)), len(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_docs", type=int, default=20000, help="number of training documents")
    p.add_argument("--val_docs", type=int, default=1000, help="number of validation documents")
    p.add_argument("--seed", type=int, default=0, help="train uses seed, val uses seed + 1")
    p.add_argument("--tokenizer", default="char", help="char, or a tiktoken encoding such as gpt2")
    p.add_argument("--out", default=None, help="output directory (default data/facts, or data/facts_<tokenizer>)")
    args = p.parse_args(argv)
    if args.train_docs < 1 or args.val_docs < 1:
        sys.exit(f"error: --train_docs and --val_docs must be >= 1 (got {args.train_docs} and {args.val_docs}): "
                 f"each split needs documents")

    tok = CharTokenizer(ALPHABET) if args.tokenizer == "char" else TiktokenTokenizer(args.tokenizer)
    name = "facts" if args.tokenizer == "char" else f"facts_{args.tokenizer}"
    # With char tokens documents are separated by the blank line that ends each one; with BPE the
    # end-of-text token follows every document, as in GPT-2's training data.
    write_dataset(args.out or default_out_dir(name),
                  {"train": documents(args.train_docs, args.seed, tok),
                   "val": documents(args.val_docs, args.seed + 1, tok)},
                  tok, name, extra_meta={"generator": {"seed": args.seed, "train_docs": args.train_docs,
                                                       "val_docs": args.val_docs}})


if __name__ == "__main__":
    main()
