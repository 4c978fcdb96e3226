"""
Associative recall: pairs of a key and a value, then questions that give a key and want its value,
generated from a seed with no download. It is the smallest form of reading facts from the context: a
model that does not bind a value to its key can only pick one of the document's values at random.

    k7 v2 . k31 v5 . ? k31 v5 . ? k7 v2 . ? k31 v5 .

One token per word. Each document states --pairs pairs (distinct keys, values drawn with repeats), then
asks --queries questions about keys drawn from them. Every document has the same layout, so with
block_size = the document's length (19 tokens by default, with <eot> after it) each training window is one
document from its start and the answer of question i is always at the same position: the loss at each
position (train.py's position_loss.png) shows recall directly, 0 where the model binds and ln(pairs) where it
picks a value of the document at random (a little less where two values repeat).

    python prepare/recall.py                                  # data/recall: 2 pairs, 3 questions, 40 keys, 8 values
    python prepare/recall.py --pairs=4 --queries=4 --out data/recall_4
"""

import argparse
import sys

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
import numpy as np

from prepare.common import WordTokenizer, default_out_dir, write_dataset


def document(rng, pairs, queries, keys, values):
    """One document's text: the pairs ("k v ."), then the questions ("? k v .")."""
    ks = rng.choice(keys, size=pairs, replace=False)
    vs = rng.integers(values, size=pairs)
    asked = rng.integers(pairs, size=queries)
    return " ".join([*(f"k{k} v{v} ." for k, v in zip(ks, vs)), *(f"? k{ks[i]} v{vs[i]} ." for i in asked)])


def documents(n, rng, tok, args):
    """(ids, prefix length 0, n_bytes) of n documents."""
    for _ in range(n):
        text = document(rng, args.pairs, args.queries, args.keys, args.values)
        yield tok.encode(text), 0, len(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=2, help="key-value pairs per document")
    p.add_argument("--queries", type=int, default=3, help="questions per document")
    p.add_argument("--keys", type=int, default=40, help="distinct keys")
    p.add_argument("--values", type=int, default=8, help="distinct values")
    p.add_argument("--train_docs", type=int, default=40_000, help="documents in train")
    p.add_argument("--val_docs", type=int, default=1_000, help="documents in val")
    p.add_argument("--seed", type=int, default=0, help="seeds the generator (val draws from seed + 1)")
    p.add_argument("--out", default=None, help="output directory (default data/recall)")
    args = p.parse_args(argv)
    if not 1 <= args.pairs <= args.keys or args.queries < 1 or args.values < 2:
        sys.exit(f"error: need 1 <= --pairs <= --keys, --queries >= 1 and --values >= 2; got --pairs={args.pairs}, "
                 f"--keys={args.keys}, --queries={args.queries}, --values={args.values}")
    tok = WordTokenizer([*(f"k{i}" for i in range(args.keys)), *(f"v{i}" for i in range(args.values)), ".", "?",
                         "<eot>"])
    out = args.out or default_out_dir("recall")
    write_dataset(out, {"train": documents(args.train_docs, np.random.default_rng(args.seed), tok, args),
                        "val": documents(args.val_docs, np.random.default_rng(args.seed + 1), tok, args)},
                  tok, "recall", extra_meta={"generator": {k: v for k, v in vars(args).items() if k != "out"}})
    print(f"{out}: documents of {3 * args.pairs + 4 * args.queries} tokens (+ <eot>): "
          f"--block_size={3 * args.pairs + 4 * args.queries} puts one in each window")


if __name__ == "__main__":
    main()
