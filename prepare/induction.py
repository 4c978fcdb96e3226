"""
Random tokens with repeated segments, the corpus on which only induction helps (docs/induction.md):
generated from a seed, with no download.

Each document is doc_len uniformly random tokens, except that at every position a segment repeat
starts with probability repeat_prob: a copy of an earlier stretch of this document, of a random
length in [min_len, max_len], from a random earlier place. Distances and lengths vary, so no fixed
offset predicts the copy (a fixed distance lets a model learn "attend k back" instead of induction).
The only way to beat the uniform loss ln(vocab_size) is to find the earlier occurrence of the
current token and predict what followed it: an induction head. With doc_len = the model's
block_size + 1, each training window is one document from its start, and position t in the context
is position t in the document; there a copy's source sits about halfway back, a prior that a model
with learned positions uses (docs/induction.md). Longer documents with max_distance take it away:
windows start anywhere, and a copy's source is at most max_distance tokens back.

    python prepare/induction.py                                       # data/induction: 128 tokens, 65-token documents
    python prepare/induction.py --vocab_size=64 --doc_len=129 --out data/induction_64_129
    python prepare/induction.py --doc_len=257 --max_distance=48 --repeat_prob=0.3 --min_len=8 --max_len=24 --out data/induction_dense
"""

import argparse
import sys

import numpy as np

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import WordTokenizer, default_out_dir, write_dataset


def document(rng, vocab_size, doc_len, repeat_prob, min_len, max_len, max_distance=0, skip_prob=0.0):
    """One document: (doc_len,) int64 token ids, random but for segments copied from earlier in it,
    at most max_distance tokens back (0: from anywhere before). With skip_prob, a token outside the
    copies repeats the token two back (A B A) with that chance instead of being random."""
    doc = rng.integers(vocab_size, size=doc_len)
    pos = min_len  # a copy needs min_len tokens before it
    while pos < doc_len:
        if rng.random() < repeat_prob:
            n = min(int(rng.integers(min_len, max_len + 1)), pos, doc_len - pos)
            lo = max(0, pos - max_distance) if max_distance else 0
            src = int(rng.integers(lo, pos - n + 1))  # anywhere (in reach) that ends before the copy starts
            doc[pos:pos + n] = doc[src:src + n]
            pos += n
        else:
            if skip_prob and rng.random() < skip_prob:
                doc[pos] = doc[pos - 2]
            pos += 1
    return doc


def documents(n_docs, rng, tok, args):
    """(ids, prefix length 0, n_bytes) for n_docs documents; bytes are those of the words joined by spaces."""
    for _ in range(n_docs):
        ids = document(rng, args.vocab_size, args.doc_len, args.repeat_prob, args.min_len, args.max_len,
                       args.max_distance, args.skip_prob)
        yield ids, 0, len(tok.decode(ids))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab_size", type=int, default=128, help="distinct tokens")
    parser.add_argument("--doc_len", type=int, default=65, help="tokens per document (the model's block_size + 1)")
    parser.add_argument("--repeat_prob", type=float, default=0.08, help="chance that a repeat starts at a position")
    parser.add_argument("--min_len", type=int, default=3, help="shortest repeated segment")
    parser.add_argument("--max_len", type=int, default=16, help="longest repeated segment")
    parser.add_argument("--max_distance", type=int, default=0,
                        help="copies start at most this many tokens after their source (0: anywhere earlier)")
    parser.add_argument("--skip_prob", type=float, default=0.0,
                        help="chance that a token outside the copies repeats the token two back")
    parser.add_argument("--train_docs", type=int, default=40_000, help="documents in train")
    parser.add_argument("--val_docs", type=int, default=1_000, help="documents in val")
    parser.add_argument("--seed", type=int, default=0, help="seeds the generator (val draws from seed + 1)")
    parser.add_argument("--out", default=None, help="output directory (default data/induction)")
    args = parser.parse_args(argv)
    if args.vocab_size < 2:
        sys.exit(f"error: --vocab_size must be >= 2, got {args.vocab_size}")
    if not 1 <= args.min_len <= args.max_len < args.doc_len:
        sys.exit(f"error: need 1 <= --min_len <= --max_len < --doc_len, got {args.min_len}, {args.max_len}, "
                 f"{args.doc_len}")
    if args.max_distance and not args.max_len <= args.max_distance:
        sys.exit(f"error: --max_distance must be 0 or >= --max_len, got {args.max_distance}")
    for key in ("repeat_prob", "skip_prob"):
        if not 0 <= getattr(args, key) <= 1:
            sys.exit(f"error: --{key} must be in [0, 1], got {getattr(args, key)}")
    if args.train_docs < 1 or args.val_docs < 1:
        sys.exit("error: --train_docs and --val_docs must be >= 1")

    tok = WordTokenizer([str(i) for i in range(args.vocab_size)])
    gen = {k: v for k, v in vars(args).items() if k != "out"}
    write_dataset(args.out or default_out_dir("induction"),
                  {"train": documents(args.train_docs, np.random.default_rng(args.seed), tok, args),
                   "val": documents(args.val_docs, np.random.default_rng(args.seed + 1), tok, args)},
                  tok, "induction", extra_meta={"generator": gen})


if __name__ == "__main__":
    main()
