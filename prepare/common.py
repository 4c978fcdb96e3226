"""
What every prepare script shares: tokenizers, and writing a dataset so train.py can memory-map it.

A dataset directory data/<name>/ holds, for each split (train, val):
  <split>.bin        the token ids back to back, uint16 when vocab_size <= 65535 else uint32
  <split>.docs.npy   int64 (n_docs, 2): each document's first token offset and its prefix length
                     (the "preloaded context" part, e.g. the facts block; 0 when a dataset has none)
and one meta.json: vocab_size, dtype, tokenizer ("char" with its `chars`, or a tiktoken encoding),
eot_id (the end-of-text token written after every document, or null), and per split the token
count, document count and UTF-8 byte count (for bits per byte).

Everything is written under temporary names and renamed at the end, so an interrupted prepare never
leaves a half-written dataset behind, and an existing dataset is replaced only by a complete one.
"""

import json
import os
import sys

import numpy as np

# GPT-2's BPE. tiktoken's "r50k_base" is token-identical to "gpt2" and is the one whose file the
# offline cache (../shared/data/tiktoken_cache, via TIKTOKEN_CACHE_DIR) holds, so "gpt2" maps to it.
TIKTOKEN_ALIASES = {"gpt2": "r50k_base"}


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters of the corpus."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.n_vocab = len(self.chars)
        self.eot_token = None

    def encode(self, text):
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in this char vocabulary") from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


class TiktokenTokenizer:
    """GPT-2 BPE (or any tiktoken encoding). encode() ignores special tokens in the text."""

    def __init__(self, name):
        import tiktoken

        self.name = name
        self.enc = tiktoken.get_encoding(TIKTOKEN_ALIASES.get(name, name))
        self.n_vocab = self.enc.n_vocab
        self.eot_token = self.enc.eot_token

    def encode(self, text):
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts, num_threads=8):
        return self.enc.encode_ordinary_batch(texts, num_threads=num_threads)

    def decode(self, ids):
        return self.enc.decode(list(ids))


def get_tokenizer(meta):
    """The tokenizer a dataset (or a checkpoint, which carries its meta) was written with."""
    if meta["tokenizer"] == "char":
        return CharTokenizer(meta["chars"])
    return TiktokenTokenizer(meta["tokenizer"])


def dtype_for(vocab_size):
    return np.uint16 if vocab_size <= 65535 else np.uint32


def write_dataset(out_dir, splits, tokenizer, name, extra_meta=None, append_eot=True):
    """Write data/<name>/ from {split: iterable of (token_ids, prefix_len, n_bytes)}, one per document.

    Documents are streamed to disk as they come, so memory does not grow with the dataset. If the
    tokenizer has an end-of-text token and append_eot is set, it follows every document.
    """
    os.makedirs(out_dir, exist_ok=True)
    dtype = dtype_for(tokenizer.n_vocab)
    eot = tokenizer.eot_token if append_eot else None
    meta = {"name": name, "vocab_size": tokenizer.n_vocab, "dtype": np.dtype(dtype).name,
            "tokenizer": "char" if isinstance(tokenizer, CharTokenizer) else tokenizer.name,
            "eot_id": eot, "splits": {}}
    if isinstance(tokenizer, CharTokenizer):
        meta["chars"] = tokenizer.chars
    meta.update(extra_meta or {})

    tmp_paths = []
    try:
        for split, docs in splits.items():
            bin_tmp = os.path.join(out_dir, f".{split}.bin.tmp")
            docs_tmp = os.path.join(out_dir, f".{split}.docs.npy.tmp")
            tmp_paths += [bin_tmp, docs_tmp]
            index, n_tokens, n_bytes = [], 0, 0
            with open(bin_tmp, "wb") as f:
                for ids, prefix_len, nb in docs:
                    ids = np.asarray(ids, dtype=dtype)
                    if eot is not None:
                        ids = np.append(ids, np.array(eot, dtype=dtype))
                    index.append((n_tokens, prefix_len))
                    f.write(ids.tobytes())
                    n_tokens += len(ids)
                    n_bytes += nb
            if n_tokens == 0:
                raise ValueError(f"the {split} split of {name} is empty")
            with open(docs_tmp, "wb") as f:
                np.save(f, np.array(index, dtype=np.int64).reshape(-1, 2))
            meta["splits"][split] = {"tokens": n_tokens, "docs": len(index), "bytes": n_bytes}
        meta_tmp = os.path.join(out_dir, ".meta.json.tmp")
        tmp_paths.append(meta_tmp)
        with open(meta_tmp, "w") as f:
            json.dump(meta, f, indent=1)
        # all files complete: move them into place (meta.json last, so it only ever describes
        # bins that are already there)
        for split in splits:
            os.replace(os.path.join(out_dir, f".{split}.bin.tmp"), os.path.join(out_dir, f"{split}.bin"))
            os.replace(os.path.join(out_dir, f".{split}.docs.npy.tmp"), os.path.join(out_dir, f"{split}.docs.npy"))
        os.replace(meta_tmp, os.path.join(out_dir, "meta.json"))
    finally:
        for p in tmp_paths:
            if os.path.exists(p):
                os.remove(p)
    for split, s in meta["splits"].items():
        print(f"{out_dir}/{split}.bin: {s['tokens']:,} tokens in {s['docs']:,} documents")
    return meta


def text_docs(texts, tokenizer):
    """(ids, prefix_len=0, n_bytes) for each text: the common case of documents without a prefix."""
    for t in texts:
        yield tokenizer.encode(t), 0, len(t.encode("utf-8"))


def read_text_or_download(path, url):
    """The file at `path`, or (when no path is given) the text at `url`."""
    if path:
        if not os.path.exists(path):
            sys.exit(f"error: input file {path} not found")
        with open(path, encoding="utf-8") as f:
            return f.read()
    import urllib.request

    print(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read().decode("utf-8")
    except OSError as e:
        sys.exit(f"error: could not download {url} ({e}); pass --input PATH to a local copy")


def default_out_dir(name):
    """data/<name> next to train.py, whichever directory the script is run from."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", name)
