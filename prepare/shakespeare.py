"""
Tiny Shakespeare in BPE tokens (nanoGPT's shakespeare): same text and 90/10 split by characters as
shakespeare_char, encoded with tiktoken's GPT-2 encoding, or with a byte-level BPE of --vocab_size
tokens trained here on the train split (prepare/common.py, train_bpe).

    TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt
    python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt --tokenizer=bpe --vocab_size=2048
                                                                               # -> data/shakespeare_bpe2048
"""

import argparse
import sys

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import (TiktokenTokenizer, default_out_dir, read_text_or_download, text_docs, train_bpe,
                            write_dataset)
from prepare.shakespeare_char import URL


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="local tiny-shakespeare text (default: download it)")
    p.add_argument("--tokenizer", default="gpt2", help="tiktoken encoding (gpt2 = r50k_base), or bpe: train one here")
    p.add_argument("--vocab_size", type=int, default=None, help="with --tokenizer=bpe: its vocabulary size (>= 257)")
    p.add_argument("--out", default=None, help="output directory (default data/shakespeare or data/shakespeare_bpe<N>)")
    args = p.parse_args(argv)
    if (args.tokenizer == "bpe") != (args.vocab_size is not None):
        sys.exit("error: --tokenizer=bpe needs --vocab_size (e.g. 2048), and --vocab_size needs --tokenizer=bpe")

    text = read_text_or_download(args.input, URL)
    split = int(len(text) * 0.9)
    if args.tokenizer == "bpe":  # learned from the train split only; no end-of-text token (one document)
        try:
            tok = train_bpe([text[:split]], args.vocab_size)
        except ValueError as e:
            sys.exit(f"error: {e}")
        name = f"shakespeare_bpe{args.vocab_size}"
    else:
        tok, name = TiktokenTokenizer(args.tokenizer), "shakespeare"
    # one document per split and no end-of-text token, exactly like nanoGPT's prepare.py
    splits = {"train": text_docs([text[:split]], tok), "val": text_docs([text[split:]], tok)}
    write_dataset(args.out or default_out_dir(name), splits, tok, name, append_eot=False)


if __name__ == "__main__":
    main()
