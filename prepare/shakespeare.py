"""
Tiny Shakespeare in GPT-2 BPE tokens (nanoGPT's shakespeare): same text and 90/10 split by
characters as shakespeare_char, encoded with tiktoken's GPT-2 encoding.

    TIKTOKEN_CACHE_DIR=../shared/data/tiktoken_cache python prepare/shakespeare.py --input ../shared/data/tinyshakespeare.txt
"""

import argparse

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import TiktokenTokenizer, default_out_dir, read_text_or_download, text_docs, write_dataset
from prepare.shakespeare_char import URL


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="local tiny-shakespeare text (default: download it)")
    p.add_argument("--tokenizer", default="gpt2", help="tiktoken encoding (gpt2 = r50k_base)")
    p.add_argument("--out", default=default_out_dir("shakespeare"), help="output directory")
    args = p.parse_args(argv)

    text = read_text_or_download(args.input, URL)
    tok = TiktokenTokenizer(args.tokenizer)
    split = int(len(text) * 0.9)
    # one document per split and no end-of-text token, exactly like nanoGPT's prepare.py
    write_dataset(args.out, {"train": text_docs([text[:split]], tok), "val": text_docs([text[split:]], tok)},
                  tok, "shakespeare", append_eot=False)


if __name__ == "__main__":
    main()
