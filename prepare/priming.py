"""
(document, prompt, answer) triples for the priming experiment (design note 000), generated
from a seed with no download. The document is the "documentation": a few facts about invented
people; the prompt asks for one of them; the answer is only in the document.

    document:  vo ka lives in da su . mi be lives in tu ve .
    prompt:    ? mi be lives in
    answer:    tu ve .

Names and places are two syllables each, drawn from the syllables of prepare/facts.py's generator,
one token per syllable (a word vocabulary of 75 tokens), so a small model learns to look an answer
up within a few minutes of CPU. Places are drawn fresh for every document, so an answer can be
neither guessed (1 in 4,900) nor memorized. Names are split once, by `seed`, into a training pool
and a held-out pool of 20%: validation documents only use names that no training document contains.

For the base model every triple is one training document, `document prompt answer` followed by
<eot>, with the document recorded as its prefix (the `docs.npy` index), and a `no_doc_fraction` of
them have no document at all, so the base model has also seen prompts alone (the `no_doc`
condition is then a fair baseline, not a distribution shift). The priming run of train.py
(`--freeze_base=True`) splits each document at that prefix: the prefix primes, the rest is the
input. `val_triples.jsonl` lists the validation triples for the evaluation of tools/prime.py.

    python prepare/priming.py                        # data/priming
    python prepare/priming.py --n_facts=1,3 --out data/priming_3
"""

import argparse
import json
import os
import random
import sys

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import WordTokenizer, default_out_dir, write_dataset
from prepare.facts import CONSONANTS, VOWELS

SYLLABLES = [c + v for c in CONSONANTS for v in VOWELS]  # the syllables facts.invent_word draws from
WORDS = SYLLABLES + ["lives", "in", "?", ".", "<eot>"]
HELD_OUT = 0.2  # share of all names kept for validation


def name_pools(seed):
    """(training names, held-out names): every two-syllable name, split once by `seed`."""
    names = [f"{a} {b}" for a in SYLLABLES for b in SYLLABLES]
    random.Random(seed).shuffle(names)
    k = int(len(names) * HELD_OUT)
    return names[k:], names[:k]


def make_triple(rng, names, n_facts=(1, 2)):
    """{"document", "prompt", "answer"}: n_facts facts about distinct people, a question about one."""
    people = rng.sample(names, rng.randint(*n_facts))
    places = [f"{rng.choice(SYLLABLES)} {rng.choice(SYLLABLES)}" for _ in people]
    asked = rng.randrange(len(people))
    return {"document": " ".join(f"{n} lives in {p} ." for n, p in zip(people, places)),
            "prompt": f"? {people[asked]} lives in", "answer": f"{places[asked]} ."}


def triples(n, seed, names, n_facts=(1, 2)):
    rng = random.Random(seed)
    return [make_triple(rng, names, n_facts) for _ in range(n)]


def documents(ts, tok, no_doc_fraction, seed):
    """(ids, prefix length, n_bytes) of base-model training documents; some lose their document."""
    rng = random.Random(seed)
    for t in ts:
        doc = "" if rng.random() < no_doc_fraction else t["document"]
        text = " ".join(s for s in (doc, t["prompt"], t["answer"]) if s)
        yield tok.encode(text), len(tok.encode(doc)), len(text)


def parse_range(s):
    lo, _, hi = s.partition(",")
    return int(lo), int(hi or lo)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_docs", type=int, default=50000, help="number of training triples")
    p.add_argument("--val_docs", type=int, default=1000, help="number of validation triples (held-out names)")
    p.add_argument("--seed", type=int, default=0, help="splits the names; train uses seed + 1, val seed + 2")
    p.add_argument("--n_facts", type=parse_range, default=(1, 2), help="facts per document, MIN,MAX")
    p.add_argument("--no_doc_fraction", type=float, default=0.2, help="share of base documents without a document")
    p.add_argument("--out", default=None, help="output directory (default data/priming)")
    args = p.parse_args(argv)
    if not 1 <= args.n_facts[0] <= args.n_facts[1]:
        sys.exit(f"error: --n_facts must be MIN,MAX with 1 <= MIN <= MAX, got {args.n_facts}")

    tok = WordTokenizer(WORDS)
    train_names, val_names = name_pools(args.seed)
    train = triples(args.train_docs, args.seed + 1, train_names, args.n_facts)
    val = triples(args.val_docs, args.seed + 2, val_names, args.n_facts)
    out = args.out or default_out_dir("priming")
    gen = {k: v for k, v in vars(args).items() if k != "out"}
    write_dataset(out, {"train": documents(train, tok, args.no_doc_fraction, args.seed + 3),
                        "val": documents(val, tok, args.no_doc_fraction, args.seed + 4)},
                  tok, "priming", extra_meta={"generator": gen})
    with open(os.path.join(out, ".val_triples.tmp"), "w") as f:
        f.writelines(json.dumps(t) + "\n" for t in val)
    os.replace(os.path.join(out, ".val_triples.tmp"), os.path.join(out, "val_triples.jsonl"))
    print(f"{out}/val_triples.jsonl: {len(val)} held-out triples")


if __name__ == "__main__":
    main()
