"""
Tiny Shakespeare, one token per character (nanoGPT's shakespeare_char, same split and vocabulary).

    python prepare/shakespeare_char.py --input ../shared/data/tinyshakespeare.txt
    python prepare/shakespeare_char.py            # downloads the text
    python prepare/shakespeare_char.py --input old.txt --encoding=latin-1   # a file that is not UTF-8

First 90% of the characters is train, the last 10% val; the vocabulary is the 65 characters of the
text, sorted. The text is one document, so there is no end-of-text token.
"""

import argparse
import sys

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import CharTokenizer, default_out_dir, read_text_or_download, text_docs, write_dataset

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="local tiny-shakespeare text (default: download it)")
    p.add_argument("--out", default=default_out_dir("shakespeare_char"), help="output directory")
    p.add_argument("--encoding", default="utf-8", help="the --input file's encoding, e.g. latin-1 (default utf-8)")
    args = p.parse_args(argv)

    text = read_text_or_download(args.input, URL, args.encoding)
    n = len(text)
    if int(n * 0.9) in (0, n):  # one of the splits would have no characters
        sys.exit(f"error: {args.input or URL} has {n} character(s), too few to split into train and val: "
                 f"give a longer text")
    tok = CharTokenizer(sorted(set(text)))
    print(f"{n:,} characters, vocabulary of {tok.n_vocab}")
    split = int(n * 0.9)
    write_dataset(args.out, {"train": text_docs([text[:split]], tok), "val": text_docs([text[split:]], tok)},
                  tok, "shakespeare_char")


if __name__ == "__main__":
    main()
