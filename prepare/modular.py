"""
Modular addition, the grokking benchmark (Power et al. 2022; Nanda et al. 2023): every equation
a + b = c (mod p), each one short document, generated with no download.

    document:  17 96 = 0        (p = 113: 17 + 96 = 113 = 0 mod 113)

The vocabulary is the p numbers and "=" (Nanda et al.'s format: the "+" is implicit), so each
document is 4 tokens. Its first 3 (`a b =`) are recorded as its prefix, so a prefix_lm model scores
only the answer token (config/grokking.py; in a 1-layer model the answer's logits are the same as a
causal model's, since the prefix's positions feed it only through their embeddings). Every pair
(a, b) occurs exactly once: a seeded shuffle sends train_fraction of them to train and the rest to
val (0.3 as in Nanda et al.). Each split is written in (a, b) order.

    python prepare/modular.py                              # data/modular: p = 113, 30% train
    python prepare/modular.py --p 97 --train_fraction 0.5 --out data/modular_97
"""

import argparse
import random
import sys

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import WordTokenizer, default_out_dir, write_dataset


def split_pairs(p, train_fraction, seed):
    """(train pairs, val pairs): all p * p pairs (a, b), shuffled by seed, the first share to train;
    each list sorted."""
    pairs = [(a, b) for a in range(p) for b in range(p)]
    random.Random(seed).shuffle(pairs)
    k = round(train_fraction * len(pairs))
    return sorted(pairs[:k]), sorted(pairs[k:])


def documents(pairs, p, tok):
    """(ids, prefix length 3, n_bytes) of `a b = c` for each pair."""
    for a, b in pairs:
        text = f"{a} {b} = {(a + b) % p}"
        yield tok.encode(text), 3, len(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--p", type=int, default=113, help="the modulus (113, as in Nanda et al.)")
    parser.add_argument("--train_fraction", type=float, default=0.3, help="share of all pairs that goes to train")
    parser.add_argument("--seed", type=int, default=0, help="seeds the shuffle that splits the pairs")
    parser.add_argument("--out", default=None, help="output directory (default data/modular)")
    args = parser.parse_args(argv)
    if args.p < 2:
        sys.exit(f"error: --p must be >= 2, got {args.p}")
    n_train = round(args.train_fraction * args.p ** 2)
    if not 0 < n_train < args.p ** 2:
        sys.exit(f"error: --train_fraction {args.train_fraction} leaves train or val without a pair: "
                 f"give a share in (0, 1)")

    tok = WordTokenizer([str(i) for i in range(args.p)] + ["="])
    train, val = split_pairs(args.p, args.train_fraction, args.seed)
    gen = {k: v for k, v in vars(args).items() if k != "out"}
    write_dataset(args.out or default_out_dir("modular"),
                  {"train": documents(train, args.p, tok), "val": documents(val, args.p, tok)},
                  tok, "modular", extra_meta={"generator": gen})


if __name__ == "__main__":
    main()
