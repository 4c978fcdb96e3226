"""
The shared path of the dataset scripts (tinystories, openwebtext, books, wikitext, dolma, squad, text):

    rows (HF hub, or local files through HF `datasets`) -> documents -> train/val -> tokens -> bins

A script only says where its data lives and how a row becomes documents (a `Source`); everything else
is here and common to all of them:

- Loading. Without --data_files, `datasets.load_dataset(hub_id, hub_config)` (downloaded and cached,
  or read as a stream with --streaming); a repository that still needs a loading script, which
  `datasets` 4+ refuses, is read from the hub's Parquet export instead (revision refs/convert/parquet).
  With --data_files, the very same `datasets` builders read local files, one file at a time: .txt
  (and anything else) with the "text" builder line by line, .json/.jsonl with "json", .parquet with
  "parquet", optionally compressed (.gz, .zst, ...). Local files are always streamed: nothing to
  download, and no Arrow copy in the HF cache.
- Documents. Text files are cut into documents by lines: the text `<|endoftext|>` ends a document
  wherever it is (and is dropped), a line for which the script's `line_rule` holds starts a new one,
  and the end of a file ends the last one. Documents are stripped of surrounding whitespace (unless
  the script says otherwise) and whitespace-only documents are dropped.
- End of text. With a tiktoken or trained BPE tokenizer the end-of-text token (50256 for GPT-2) is written after
  every document, the last included, as in GPT-2's training data; the document index
  (<split>.docs.npy) gives each document's first token and prefix length. `--tokenizer char` has no
  such token: documents follow each other directly and only the index separates them.
- Splits. A hub dataset's own validation split is used when it has one. Otherwise (and for local
  files) every k-th document is held out for val, k = round(1 / --val_fraction), starting at an
  offset drawn from --seed; documents of one group (a SQuAD context) stay together. A source with
  too few documents to reach val (one book) holds out the last val_fraction of its text instead, from
  the start of a line. A file can also be assigned to a split by name: `--data_files train=a.txt val=b.txt`.
- --max_tokens N: a sample of N tokens in all (end-of-text tokens included): val gets
  round(N * val_fraction) and train the rest; documents are taken in order and the last one of each
  split is cut to fit, so each split holds exactly its share when there is enough data. With a hub
  validation split, val_fraction only sets this share.
- Tokenization: batches of documents are encoded by --num_proc processes (GPT-2 BPE through
  tiktoken's encode_ordinary, or encode_ordinary_batch with --num_threads > 1), results come back in
  order, so the output is identical whatever the number of processes. A progress bar shows tokens/s.
- Memory stays flat: rows are streamed, a few batches are in flight at a time, tokens and the
  document index go to disk as they come (common.write_records), into temp files renamed at the end.
- `--tokenizer char`: the data is read twice, first to collect the characters. The vocabulary is the
  sorted set of characters of both splits, so every val character has a token; characters seen only
  in val (the model never trains on them) are listed in meta.json as `val_only_chars`.
- `--tokenizer bpe --vocab_size N`: a byte-level BPE of N tokens, `<|endoftext|>` included, is trained
  first on the train documents only (with --max_tokens, on the train share of that many characters),
  then used like GPT-2's (common.train_bpe); data/<name>_bpe<N>/ also gets it as tokenizer.json.
- Errors in what the user asked (missing file, unreachable hub, empty split) end in one line
  `error: ...` that says what to do, and leave no output behind (an older dataset stays intact).
"""

import argparse
import glob
import os
import random
import sys
from collections import deque
from dataclasses import dataclass, field, replace  # noqa: F401 (replace: for the scripts)
from typing import Callable, Optional

import numpy as np

from prepare.common import (EOT, CharTokenizer, EmptySplitError, TiktokenTokenizer, check_bpe_size, default_out_dir,
                            dtype_for, get_tokenizer, train_bpe, write_records)

EOT_TEXT = EOT
BATCH_CHARS = 1 << 20  # characters per tokenization batch (a few batches are in flight at once)


@dataclass
class Doc:
    text: str  # the document after its prefix (all of it when there is none)
    prefix: str = ""  # "preloaded context" (SQuAD's paragraph): its token count goes into docs.npy
    group: object = None  # consecutive documents with the same group go to the same split


@dataclass
class Source:
    """Where a dataset lives and how its rows become documents."""
    name: str  # data/<name>/ (+ "_local" for --data_files, + "_<tokenizer>" unless gpt2)
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    hub_splits: dict = field(default_factory=lambda: {"train": "train"})  # ours -> the hub's; no val: held out
    streaming: bool = False  # default of --streaming for the hub
    val_fraction: float = 0.1  # default of --val_fraction
    text_field: str = "text"
    line_rule: Optional[Callable[[str], bool]] = None  # text lines: True where a line starts a document
    hub_rows_are_lines: bool = False  # hub rows are lines of text to cut like a text file (wikitext)
    strip: bool = True
    to_docs: Optional[Callable[[dict], object]] = None  # a row -> its Docs (default: one Doc of text_field)
    json_field: Optional[str] = None  # for .json files: the field that holds the rows (SQuAD: "data")
    interleave: bool = False  # several files: one document from each in turn (dolma's sources)
    hub_files: Optional[Callable] = None  # args -> remote data files, read like local ones (dolma)


# -----------------------------------------------------------------------------
# command line

def parser(doc, source):
    """The options every dataset script has; a script may add its own before parse_args."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_files", nargs="+", metavar="FILE",
                   help="local files instead of the hub (globs ok; SPLIT=FILE puts a file in train or val)")
    p.add_argument("--max_tokens", type=int, default=None, help="take a sample of this many tokens in all")
    p.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=source.streaming,
                   help="read the hub dataset as a stream instead of downloading it (local files always are)")
    p.add_argument("--num_proc", type=int, default=max(1, min(8, (os.cpu_count() or 1) - 1)),
                   help="tokenizer processes, 1 = in this process (and download processes without --streaming); "
                        "default: one per CPU but one, at most 8")
    p.add_argument("--num_threads", type=int, default=1,
                   help="threads per process for tiktoken's encode_ordinary_batch (1 = plain encode_ordinary)")
    p.add_argument("--tokenizer", default="gpt2",
                   help="gpt2 (= r50k_base), another tiktoken encoding, char, or bpe (trained here: needs --vocab_size)")
    p.add_argument("--vocab_size", type=int, default=None, help="with --tokenizer bpe: its vocabulary size")
    p.add_argument("--val_fraction", type=float, default=source.val_fraction,
                   help="held-out share of documents when there is no validation split; share of --max_tokens")
    p.add_argument("--seed", type=int, default=0, help="which documents are held out")
    p.add_argument("--hub_id", default=source.hub_id, help="Hugging Face dataset id")
    p.add_argument("--hub_config", default=source.hub_config, help="its configuration")
    p.add_argument("--out", default=None, help="output directory (default data/<name>[_local][_<tokenizer>])")
    return p


def dataset_name(source, args):
    name = source.name + ("_local" if args.data_files and source.hub_id else "")
    label = f"bpe{args.vocab_size}" if args.tokenizer == "bpe" else args.tokenizer
    return name if args.tokenizer == "gpt2" else f"{name}_{label}"


def fail(msg):
    sys.exit(f"error: {msg}")


def one_line(e):
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


# -----------------------------------------------------------------------------
# rows and documents

SCRIPT_ERROR = "Dataset scripts are no longer supported"  # datasets >= 4 on a repo that has a loading script
PARQUET_REVISION = "refs/convert/parquet"  # the hub's automatic Parquet export of a dataset repo


def _load(what, hint, *args, told=None, **kwargs):
    """datasets.load_dataset(*args, **kwargs), or a one-line error naming `what` and what to do.

    A hub dataset that still ships a loading script (Skylion007/openwebtext), which `datasets` 4+ no
    longer runs, is loaded from the hub's Parquet export of the same repository instead; `told` (a list)
    says it once for several splits."""
    import datasets

    try:
        return datasets.load_dataset(*args, **kwargs)
    except Exception as e:
        if SCRIPT_ERROR in str(e) and "revision" not in kwargs:
            if not told:  # once for all the splits of a dataset
                print(f"{args[0]} needs a loading script, which datasets {datasets.__version__} no longer runs: "
                      f"loading its Parquet export (revision={PARQUET_REVISION}) instead")
            if told is not None:
                told.append(args[0])
            return _load(what, hint, *args, revision=PARQUET_REVISION, **kwargs)
        fail(f"could not load {what} ({one_line(e)}); {hint}")


def _rows(ds, what, hint, field=None):
    """The rows of a (streamed or downloaded) dataset as dicts, or only their `field`, read as Arrow
    batches (much faster than row by row); a failure to read is a one-line error."""
    it = iter(ds.with_format("arrow").iter(batch_size=1000))
    while True:
        try:
            table = next(it)
        except StopIteration:
            return
        except Exception as e:
            fail(f"reading {what} failed ({one_line(e)}); {hint}")
        yield from (table.column(field) if field else table).to_pylist()


def group_lines(lines, starts_doc=None):
    """Documents from lines (line breaks kept): `<|endoftext|>` ends one, starts_doc(line) begins one."""
    buf = []
    for line in lines:
        while EOT_TEXT in line:
            before, line = line.split(EOT_TEXT, 1)
            buf.append(before)
            yield "".join(buf)
            buf = []
        if buf and starts_doc is not None and starts_doc(line):
            yield "".join(buf)
            buf = []
        buf.append(line)
    if buf:
        yield "".join(buf)


def _documents(source, ds, what, hint, lines):
    """Docs from one dataset (a file, or a hub split); no document crosses its end."""
    if lines:
        texts = _rows(ds, what, hint, source.text_field)
        docs = (Doc(t) for t in group_lines(texts, source.line_rule))
    elif source.to_docs is not None:
        docs = (d for r in _rows(ds, what, hint) for d in source.to_docs(r))
    else:
        docs = (Doc(t) for t in _rows(ds, what, hint, source.text_field))
    for d in docs:
        if source.strip:
            d.text = d.text.strip()
        if (d.prefix + d.text).strip():
            yield d


def _builder(path, json_field):
    """The `datasets` builder and its options for a local (or remote) file, from its extension."""
    p = path.lower()
    for ext in (".gz", ".bz2", ".xz", ".zst", ".lz4"):
        p = p.removesuffix(ext)
    if p.endswith(".jsonl"):
        return "json", {}
    if p.endswith(".json"):
        return "json", {"field": json_field} if json_field else {}
    if p.endswith(".parquet"):
        return "parquet", {}
    return "text", {"keep_linebreaks": True, "chunksize": 1 << 20}  # 1 MB at a time (default 10)


def _file_docs(source, paths, hint):
    """open() -> Docs of the files in order (or one from each in turn with source.interleave)."""
    streams = []
    for path in paths:  # loaded now, so a bad file fails before anything is written
        builder, kwargs = _builder(path, source.json_field)
        ds = _load(path, hint, builder, data_files=path, split="train", streaming=True, **kwargs)
        streams.append((ds, path, builder == "text"))

    def docs():
        its = [_documents(source, ds, path, hint, lines) for ds, path, lines in streams]
        if not source.interleave:
            for it in its:
                yield from it
            return
        live = deque(its)
        while live:
            it = live.popleft()
            d = next(it, None)
            if d is not None:
                yield d
                live.append(it)
    return docs


def _local_files(data_files):
    """{split or None: [paths]} from --data_files, globs expanded; a missing file is a one-line error."""
    out = {}
    for spec in data_files:
        split, sep, path = spec.partition("=")
        if not sep or split not in ("train", "val", "validation"):
            split, path = None, spec
        split = "val" if split == "validation" else split
        found = sorted(glob.glob(path)) if glob.has_magic(path) else [path] if os.path.exists(path) else []
        if not found:
            fail(f"{path} not found: pass existing local files to --data_files (or leave it out to use the hub)")
        out.setdefault(split, []).extend(found)
    if None in out and len(out) > 1:
        fail("give every --data_files entry a split (train=FILE val=FILE) or none")
    if list(out) == ["val"]:
        fail("--data_files has val files but no train files")
    return out


def streams(source, args):
    """[(splits, open)]: open() yields (split, Doc). All loading happens here, before any output."""
    if args.data_files or source.hub_files:
        if args.data_files:
            files, hint = _local_files(args.data_files), "check the file (see the script's --help for formats)"
        else:
            hint = "check your connection, or pass --data_files with local copies"
            files = {None: source.hub_files(args, hint)}
        if None not in files:
            return [([s], _tagged(s, _file_docs(source, files[s], hint))) for s in ("train", "val") if s in files]
        return [(["train", "val"], _held_out(_file_docs(source, files[None], hint), args))]
    hint = ("check your connection and the dataset id, or pass --data_files with local copies "
            "(HF_DATASETS_OFFLINE=1 reads only what is cached)")
    what = args.hub_id + (f" ({args.hub_config})" if args.hub_config else "")
    kw = {"streaming": True} if args.streaming else {"num_proc": args.num_proc if args.num_proc > 1 else None}
    told = []
    loaded = {s: _load(f"{what} split {hs} from the Hugging Face hub", hint, args.hub_id, args.hub_config,
                       split=hs, told=told, **kw) for s, hs in source.hub_splits.items()}

    def opener(split):
        return lambda: _documents(source, loaded[split], what, hint, source.hub_rows_are_lines)
    if "val" in loaded:
        return [([s], _tagged(s, opener(s))) for s in ("train", "val")]
    return [(["train", "val"], _held_out(opener("train"), args))]


def _tagged(split, open_docs):
    return lambda: ((split, d) for d in open_docs())


def holdout_rule(val_fraction, seed):
    """(k, offset): document group i goes to val when i % k == offset."""
    k = max(2, round(1 / val_fraction))
    return k, random.Random(seed).randrange(k)


def _held_out(open_docs, args):
    """Every k-th group of documents to val; a source whose few documents would leave val empty (one
    book) holds out the last --val_fraction of its text instead (split_tail)."""
    k, offset = holdout_rule(args.val_fraction, args.seed)
    told = []  # the char tokenizer reads the documents twice: say it once

    def docs():
        g, last, first = -1, object(), []
        for d in open_docs():
            if d.group is None or d.group != last:
                g += 1
            last = d.group
            if g < offset:  # held back until a document reaches val
                first.append(d)
                continue
            yield from (("train", d0) for d0 in first)
            first = []
            yield ("val" if g % k == offset else "train"), d
        if first:  # the source ended before its first val document
            yield from split_tail(first, args.val_fraction, say=not told)
            told.append(True)
    return docs


def split_tail(docs, val_fraction, say=True):
    """(split, Doc) pairs that hold out the last val_fraction of the documents' text (in characters) for
    val, cut at a line boundary (or between documents when the cut document has one line)."""
    need, n = val_fraction * sum(len(d.text) for d in docs), len(docs)
    while n > 1 and len(docs[n - 1].text) <= need:  # whole documents from the end
        need -= len(docs[n - 1].text)
        n -= 1
    d = docs[n - 1]  # the document the cut falls in
    target = len(d.text) - int(need)
    after = d.text.find("\n", max(0, target - 1)) + 1  # the start of the first line in the held-out share
    cut = after if 0 < after < len(d.text) else d.text.rfind("\n", 0, target) + 1  # or of the line it is in
    cut = cut if cut < len(d.text) else 0
    if cut == 0 and n == len(docs) == 1:
        fail("the text is one line, which cannot be split for val: pass a val file of its own "
             "(--data_files train=A val=B)")
    if say:
        from tqdm import tqdm

        tqdm.write(f"too few documents ({len(docs)}) to hold out one in {round(1 / val_fraction)} for val: holding out "
                   f"the last {100 * val_fraction:g}% of the text instead, from a line boundary")
    yield from (("train", d0) for d0 in docs[:n - 1])
    if cut == 0:  # one line: the document goes whole to the split that has nothing else
        yield ("val" if n == len(docs) else "train"), d
    else:
        yield "train", replace(d, text=d.text[:cut])
        yield "val", replace(d, text=d.text[cut:], prefix="")
    yield from (("val", d0) for d0 in docs[n:])


# -----------------------------------------------------------------------------
# tokenization

class Codepoints:
    """A "tokenizer" with one id per Unicode code point: the first pass of --tokenizer char."""
    n_vocab, eot_token, name = 0x110000, None, "codepoints"

    def encode(self, text):
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)

    def decode_bytes(self, ids):
        return "".join(map(chr, ids)).encode("utf-8")


def _make_tokenizer(spec):
    return Codepoints() if spec == "codepoints" else get_tokenizer(spec)


_worker = {}


def _init_worker(spec, num_threads):
    _worker.update(tok=_make_tokenizer(spec), num_threads=num_threads)


def _encode_batch(batch, tok=None, num_threads=None):
    """[(split, prefix, text)] -> [(split, ids array, prefix length in tokens, n_bytes)].

    Prefix and text are encoded separately, so the prefix length is exact and decoding the first
    prefix-length tokens gives back exactly the prefix."""
    tok = tok or _worker["tok"]
    num_threads = num_threads or _worker["num_threads"]
    pieces = [p for _, prefix, text in batch for p in (prefix, text)]
    if num_threads > 1 and hasattr(tok, "encode_batch"):
        ids = tok.encode_batch(pieces, num_threads=num_threads)
    else:
        ids = [tok.encode(p) if p else [] for p in pieces]
    dtype = dtype_for(tok.n_vocab)
    out = []
    for i, (split, prefix, text) in enumerate(batch):
        a, b = np.asarray(ids[2 * i], dtype=dtype), np.asarray(ids[2 * i + 1], dtype=dtype)
        out.append((split, np.concatenate([a, b]), len(a), len(prefix.encode("utf-8")) + len(text.encode("utf-8"))))
    return out


def _batches(pairs):
    batch, chars = [], 0
    for split, d in pairs:
        batch.append((split, d.prefix, d.text))
        chars += len(d.prefix) + len(d.text)
        if chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _encoded(batches, pool, tok, num_threads, num_proc):
    """Encoded batches in order; with a pool at most 2 * num_proc batches are in flight."""
    if pool is None:
        for b in batches:
            yield _encode_batch(b, tok, num_threads)
        return
    pending = deque()
    for b in batches:
        pending.append(pool.apply_async(_encode_batch, (b,)))
        if len(pending) >= 2 * num_proc:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _wanted(pairs, full, splits):
    """The (split, doc) pairs of splits not yet full; stops when all are (`full` fills as we go)."""
    for split, d in pairs:
        if full >= splits:
            return
        if split not in full:
            yield split, d


def budgets(max_tokens, val_fraction):
    if max_tokens is None:
        return {"train": float("inf"), "val": float("inf")}
    val = max(1, round(max_tokens * val_fraction))
    return {"train": max_tokens - val, "val": val}


def records(stream_list, tok, spec, args, desc):
    """(split, ids, prefix_len, n_bytes) for every document, within the --max_tokens budgets."""
    import multiprocessing

    from tqdm import tqdm

    budget = budgets(args.max_tokens, args.val_fraction)
    used = {"train": 0, "val": 0}
    n_eot = 0 if tok.eot_token is None else 1
    total = args.max_tokens
    pool = None
    if args.num_proc > 1:
        pool = multiprocessing.Pool(args.num_proc, _init_worker, (spec, args.num_threads))
    bar = tqdm(total=total, unit="tok", unit_scale=True, desc=desc, mininterval=1.0, smoothing=0.1)
    try:
        for splits, open_docs in stream_list:
            full = set()  # splits whose budget is spent: their documents are no longer tokenized
            docs = _wanted(open_docs(), full, set(splits))
            for batch in _encoded(_batches(docs), pool, tok, args.num_threads, args.num_proc):
                for split, ids, prefix_len, n_bytes in batch:
                    left = budget[split] - used[split]
                    if left <= n_eot:
                        full.add(split)
                        continue
                    if len(ids) + n_eot > left:  # the last document of a sample: cut to fit
                        ids = ids[:int(left) - n_eot]
                        prefix_len, n_bytes = min(prefix_len, len(ids)), len(tok.decode_bytes(ids))
                    used[split] += len(ids) + n_eot
                    bar.update(len(ids) + n_eot)
                    yield split, ids, prefix_len, n_bytes
                    if used[split] >= budget[split]:
                        full.add(split)
                if full >= set(splits):
                    break
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()


# -----------------------------------------------------------------------------
# the whole run

def run(source, args, extra_meta=None):
    """Prepare the dataset described by source and the parsed args; returns meta."""
    if not 0 < args.val_fraction <= 0.5:
        fail(f"--val_fraction must be in (0, 0.5], not {args.val_fraction}")
    if args.max_tokens is not None and args.max_tokens < 2:
        fail("--max_tokens must be at least 2 (one token for each split)")
    if args.num_proc < 1 or args.num_threads < 1:
        fail("--num_proc and --num_threads must be at least 1")
    if not args.data_files and not args.hub_id:
        fail("this script has no hub dataset: pass local files")
    if (args.tokenizer == "bpe") != (args.vocab_size is not None):
        fail("--tokenizer bpe needs --vocab_size (e.g. 2048), and --vocab_size needs --tokenizer bpe")
    if args.tokenizer == "bpe":
        try:
            check_bpe_size(args.vocab_size, (EOT,))
        except ValueError as e:
            fail(e)
    name = dataset_name(source, args)
    out = args.out or default_out_dir(name)
    stream_list = streams(source, args)

    meta_extra = {"source": {"hub_id": None if args.data_files else args.hub_id,
                             "hub_config": None if args.data_files else args.hub_config,
                             "data_files": args.data_files, "max_tokens": args.max_tokens,
                             "val_fraction": args.val_fraction, "seed": args.seed}}
    if any(len(s) > 1 for s, _ in stream_list):
        k, offset = holdout_rule(args.val_fraction, args.seed)
        meta_extra["holdout"] = {"every": k, "offset": offset}
    if args.tokenizer == "char":
        seen = {"train": set(), "val": set()}
        for split, ids, _, _ in records(stream_list, Codepoints(), "codepoints", args, f"{name}: characters"):
            seen[split].update(np.unique(ids).tolist())
        tok = CharTokenizer(sorted(chr(c) for c in seen["train"] | seen["val"]))
        spec = {"tokenizer": "char", "chars": tok.chars}
        meta_extra["val_only_chars"] = "".join(sorted(chr(c) for c in seen["val"] - seen["train"]))
    elif args.tokenizer == "bpe":  # learned from the train documents, read once as code points
        code_points = records(stream_list, Codepoints(), "codepoints", args, f"{name}: BPE text")
        train_texts = (ids.astype("<u4").tobytes().decode("utf-32-le") for split, ids, _, _ in code_points
                       if split == "train")
        try:
            tok = train_bpe(train_texts, args.vocab_size, special_tokens=(EOT,))
        except ValueError as e:
            fail(e)
        spec = {"tokenizer": "bpe", "tokenizer_json": tok.json}
    else:
        try:
            tok = TiktokenTokenizer(args.tokenizer)
        except Exception as e:
            fail(f"could not load the tiktoken encoding {args.tokenizer!r} ({one_line(e)}); use gpt2, "
                 f"another tiktoken encoding or char (offline: set TIKTOKEN_CACHE_DIR to a cache that has it)")
        spec = {"tokenizer": args.tokenizer}
    meta_extra.update(extra_meta or {})
    try:
        return write_records(out, records(stream_list, tok, spec, args, f"{name}: tokens"), ["train", "val"],
                             tok, name, meta_extra)
    except EmptySplitError as e:
        fail(f"{e}: give more text, or name a file for each split (--data_files train=A val=B)")


def main(source, doc, argv=None, add_args=None, configure=None):
    """Parse the common options (plus a script's own, via add_args(parser)) and run.

    configure(source, args) -> (source, extra_meta) lets a script adapt the source to its options."""
    p = parser(doc, source)
    if add_args:
        add_args(p)
    args = p.parse_args(argv)
    extra = None
    if configure:
        source, extra = configure(source, args)
    return run(source, args, extra)
