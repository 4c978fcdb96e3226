"""
What every prepare script shares: tokenizers, and writing a dataset so train.py can memory-map it.

A dataset directory data/<name>/ holds, for each split (train, val):
  <split>.bin        the token ids back to back, uint16 when vocab_size <= 65535 else uint32
  <split>.docs.npy   int64 (n_docs, 2): each document's first token offset and its prefix length
                     (the "preloaded context" part, e.g. the facts block; 0 when a dataset has none)
and one meta.json: vocab_size, dtype, tokenizer ("char" with its `chars`, "words" with its `words`, "bpe"
with its whole HF tokenizers JSON in `tokenizer_json`, or a tiktoken encoding), eot_id (the end-of-text
token written after every document, or null), max_token_id (the largest id in the bins, which train.py
checks against the model's vocab_size without reading them), and per split the token count, document
count and UTF-8 byte count (for bits per byte).
A "bpe" dataset also gets that JSON as a plain tokenizer.json beside meta.json, which
`tokenizers.Tokenizer.from_file` and `transformers.AutoTokenizer.from_pretrained(<the directory>)` load.

Everything is written under temporary names and renamed at the end, so an interrupted prepare never
leaves a half-written dataset behind, and an existing dataset is replaced only by a complete one.
"""

import functools
import json
import os
import sys

import numpy as np

# GPT-2's BPE. tiktoken's "r50k_base" is token-identical to "gpt2" and is the one whose file the
# offline cache (../shared/data/tiktoken_cache, via TIKTOKEN_CACHE_DIR) holds, so "gpt2" maps to it.
TIKTOKEN_ALIASES = {"gpt2": "r50k_base"}


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters of the corpus."""

    # meta.json's tokenizer name and the key its vocabulary is kept under; what one token is; how tokens join
    name, key, unit, sep = "char", "chars", "character", ""

    def __init__(self, chars):
        self.chars = list(chars)  # the vocabulary, in id order
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.n_vocab = len(self.chars)
        self.eot_token = None

    def units(self, text):
        return list(text)

    def encode(self, text):
        try:
            return [self.stoi[u] for u in self.units(text)]
        except KeyError as e:
            raise ValueError(f"{self.unit} {e.args[0]!r} is not in this {self.name.rstrip('s')} vocabulary") from None

    def decode(self, ids):
        return self.sep.join(self.chars[i] for i in ids)

    def decode_bytes(self, ids):
        return self.decode(ids).encode("utf-8")


class WordTokenizer(CharTokenizer):
    """One token per whitespace-separated word of a fixed list (synthetic corpora such as
    prepare/priming.py). The last word, when it is "<eot>", ends every document."""

    name, key, unit, sep = "words", "words", "word", " "

    def __init__(self, words):
        super().__init__(words)
        self.eot_token = self.stoi.get("<eot>")

    @property
    def words(self):
        return self.chars

    def units(self, text):
        return text.split()


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

    def decode_bytes(self, ids):
        """The exact bytes of ids (decode() replaces a character cut in the middle)."""
        return self.enc.decode_bytes([int(i) for i in ids])


class BPETokenizer:
    """A byte-level BPE trained on one dataset with HF tokenizers (train_bpe, prepare/ --tokenizer=bpe). The whole
    tokenizer.json travels in meta.json under "tokenizer_json", so a checkpoint carries it too."""

    name = "bpe"

    def __init__(self, tokenizer_json):
        from tokenizers import Tokenizer

        self.json = tokenizer_json  # tokenizers' own serialization (what export writes as tokenizer.json)
        self.hf = Tokenizer.from_str(tokenizer_json)
        self.n_vocab = self.hf.get_vocab_size()
        self.eot_token = self.hf.token_to_id(EOT)  # None when the vocabulary has no end-of-text token

    @functools.cached_property
    def token_bytes(self):
        """Each token's exact bytes, by id: byte-level characters mapped back to bytes, special tokens as UTF-8.
        Built on first use (transformers takes seconds to import, and only decode_bytes needs it)."""
        from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte <-> character map

        back = {ch: b for b, ch in bytes_to_unicode().items()}
        special = {t.content for t in self.hf.get_added_tokens_decoder().values()}
        vocab = sorted(self.hf.get_vocab().items(), key=lambda kv: kv[1])
        return [t.encode("utf-8") if t in special else bytes(back[ch] for ch in t) for t, _ in vocab]

    def encode(self, text):
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts, num_threads=8):
        """encode() of each text, in parallel on tokenizers' own threads (num_threads is not used)."""
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids):
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def decode_bytes(self, ids):
        """The exact bytes of ids (decode() replaces a character cut in the middle)."""
        try:
            return b"".join(self.token_bytes[int(i)] for i in ids)
        except IndexError:
            top = max(int(i) for i in ids)
            raise ValueError(f"token id {top} is not in this vocabulary of {self.n_vocab}") from None


def check_bpe_size(vocab_size, special_tokens=()):
    """A ValueError that says what to do unless vocab_size holds every byte, the special tokens and one merge."""
    least = 256 + len(special_tokens) + 1
    if vocab_size < least:
        raise ValueError(f"--vocab_size must be at least {least} (256 bytes + {len(special_tokens)} special "
                         f"token(s) + 1 merge), got {vocab_size}")


def train_bpe(texts, vocab_size, special_tokens=()):
    """A byte-level BPE of vocab_size tokens (256 bytes, the special tokens, then merges) learned from texts.

    GPT-2's recipe with HF tokenizers: the text is split by GPT-2's regex (words with their leading space,
    numbers, punctuation runs), each piece is UTF-8 bytes shown as 256 printable characters, and every
    byte is in the vocabulary whether or not the text has it, so any text encodes. The same texts and
    size give the same tokenizer (ties between pair counts are broken by the pair, not by chance).
    Pass the train split only, so val scores text the tokenizer has not seen. Too small a size, or a
    text with too few distinct pairs to reach it, is a ValueError that says what to do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check_bpe_size(vocab_size, special_tokens)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    if tok.get_vocab_size() < vocab_size:
        raise ValueError(f"the training text has only enough distinct pairs for a vocabulary of {tok.get_vocab_size()}"
                         f", not {vocab_size}: give a smaller --vocab_size or more text")
    return BPETokenizer(tok.to_str())


EOT = "<|endoftext|>"  # the end-of-text token's text, as in GPT-2


def get_tokenizer(meta):
    """The tokenizer a dataset (or a checkpoint, which carries its meta) was written with."""
    if meta["tokenizer"] == "char":
        return CharTokenizer(meta["chars"])
    if meta["tokenizer"] == "words":
        return WordTokenizer(meta["words"])
    if meta["tokenizer"] == "bpe":
        return BPETokenizer(meta["tokenizer_json"])
    return TiktokenTokenizer(meta["tokenizer"])


def dtype_for(vocab_size):
    return np.uint16 if vocab_size <= 65535 else np.uint32


class EmptySplitError(ValueError):
    """A split received no documents (too little data, or a --val_fraction / --max_tokens too small)."""


def write_dataset(out_dir, splits, tokenizer, name, extra_meta=None, append_eot=True):
    """Write data/<name>/ from {split: iterable of (token_ids, prefix_len, n_bytes)}, one per document.

    Documents are streamed to disk as they come, so memory does not grow with the dataset. If the
    tokenizer has an end-of-text token and append_eot is set, it follows every document.
    """
    records = ((split, *doc) for split, docs in splits.items() for doc in docs)
    return write_records(out_dir, records, list(splits), tokenizer, name, extra_meta, append_eot)


def write_records(out_dir, records, split_names, tokenizer, name, extra_meta=None, append_eot=True):
    """write_dataset for one stream of (split, token_ids, prefix_len, n_bytes) whose splits interleave.

    Tokens and the document index both go to disk as they come (the index through a raw temp file
    that becomes the .npy at the end), so memory stays flat whatever the number of documents.
    """
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    dtype = dtype_for(tokenizer.n_vocab)
    eot = tokenizer.eot_token if append_eot else None
    meta = {"name": name, "vocab_size": tokenizer.n_vocab, "dtype": np.dtype(dtype).name,
            "tokenizer": tokenizer.name,
            "eot_id": eot, "splits": {}}
    if isinstance(tokenizer, CharTokenizer):  # char and word vocabularies travel with the data
        meta[tokenizer.key] = tokenizer.chars
    if isinstance(tokenizer, BPETokenizer):  # so does a trained BPE, also as a plain tokenizer.json for other tools
        meta["tokenizer_json"] = tokenizer.json
    meta.update(extra_meta or {})

    tmp = {s: {k: os.path.join(out_dir, f".{s}.{k}.tmp") for k in ("bin", "index", "docs.npy")} for s in split_names}
    tmp_paths = [p for t in tmp.values() for p in t.values()] + [os.path.join(out_dir, ".tokenizer.json.tmp"),
                                                                  os.path.join(out_dir, ".meta.json.tmp")]
    files = {}
    ok = False
    try:
        counts = {s: {"tokens": 0, "docs": 0, "bytes": 0} for s in split_names}
        max_id = 0
        for s in split_names:
            files[s] = (open(tmp[s]["bin"], "wb"), open(tmp[s]["index"], "wb"))
        for split, ids, prefix_len, nb in records:
            ids = np.asarray(ids, dtype=dtype)
            if eot is not None:
                ids = np.append(ids, np.array(eot, dtype=dtype))
            c = counts[split]
            files[split][1].write(np.array([c["tokens"], prefix_len], dtype=np.int64).tobytes())
            files[split][0].write(ids.tobytes())
            c["tokens"] += len(ids)
            c["docs"] += 1
            max_id = max(max_id, int(ids.max(initial=0)))
            c["bytes"] += nb
        for s in split_names:
            for f in files.pop(s):
                f.close()
            if counts[s]["tokens"] == 0:
                raise EmptySplitError(f"the {s} split of {name} is empty")
            _raw_index_to_npy(tmp[s]["index"], tmp[s]["docs.npy"], counts[s]["docs"])
            meta["splits"][s] = counts[s]
        meta["max_token_id"] = max_id
        with open(tmp_paths[-1], "w") as f:
            json.dump(meta, f, indent=1)
        if "tokenizer_json" in meta:
            with open(tmp_paths[-2], "w", encoding="utf-8") as f:
                f.write(meta["tokenizer_json"])
        # all files complete: move them into place (meta.json last, so it only ever describes
        # bins that are already there)
        for s in split_names:
            os.replace(tmp[s]["bin"], os.path.join(out_dir, f"{s}.bin"))
            os.replace(tmp[s]["docs.npy"], os.path.join(out_dir, f"{s}.docs.npy"))
        if "tokenizer_json" in meta:
            os.replace(tmp_paths[-2], os.path.join(out_dir, "tokenizer.json"))
        elif os.path.exists(os.path.join(out_dir, "tokenizer.json")):  # an older BPE dataset's, no longer true
            os.remove(os.path.join(out_dir, "tokenizer.json"))
        os.replace(tmp_paths[-1], os.path.join(out_dir, "meta.json"))
        ok = True
    finally:
        for pair in files.values():
            for f in pair:
                f.close()
        for p in tmp_paths:
            if os.path.exists(p):
                os.remove(p)
        if not ok and created and not os.listdir(out_dir):
            os.rmdir(out_dir)
    for split, s in meta["splits"].items():
        print(f"{out_dir}/{split}.bin: {s['tokens']:,} tokens in {s['docs']:,} documents")
    return meta


def _raw_index_to_npy(raw_path, npy_path, n_docs):
    """The raw int64 (start, prefix) pairs at raw_path as an (n_docs, 2) .npy file, copied in chunks."""
    import shutil

    with open(npy_path, "wb") as out, open(raw_path, "rb") as raw:
        np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(np.int64).str, "fortran_order": False,
                                                   "shape": (n_docs, 2)})
        shutil.copyfileobj(raw, out, 1 << 20)


def text_docs(texts, tokenizer):
    """(ids, prefix_len=0, n_bytes) for each text: the common case of documents without a prefix."""
    for t in texts:
        yield tokenizer.encode(t), 0, len(t.encode("utf-8"))


def read_text_or_download(path, url, encoding="utf-8"):
    """The file at `path` (read as `encoding`), or (when no path is given) the text at `url`. A file
    in another encoding, or an empty one, is a one-line error that says what to do."""
    if path:
        if not os.path.exists(path):
            sys.exit(f"error: input file {path} not found")
        try:
            with open(path, encoding=encoding) as f:
                text = f.read()
        except UnicodeDecodeError as e:
            sys.exit(f"error: {path} is not {encoding} (byte {e.object[e.start]:#04x} at offset {e.start}): convert "
                     f"it (iconv -f latin1 -t utf-8 {path} > {path}.utf8) or pass its encoding, e.g. --encoding=latin-1")
        except LookupError:
            sys.exit(f"error: unknown encoding {encoding!r}: give one Python knows, e.g. --encoding=latin-1")
        if not text.strip():
            sys.exit(f"error: {path} is empty: nothing to prepare; give a file with some text")
        return text
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
