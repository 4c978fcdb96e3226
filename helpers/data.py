"""
Data: token bins on disk, memory-mapped and never loaded whole, cut into (x, y) training windows.

A dataset folder (written by a prepare/ script) holds train.bin and val.bin (token ids back to
back), <split>.docs.npy (where each document starts, and its prefix length) and meta.json
(tokenizer, vocabulary, sizes). prepare/common.py describes the format.
"""

import json
import os
import sys

import numpy as np
import torch

from helpers.config import UserError
from helpers.extras import Extra

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository


def dataset_dir(dataset, data_dir="", prepare_facts=True):
    """The folder of a dataset: data_dir, or data/<dataset> in the repository. The offline default
    (facts) is generated there on first use, since it needs no download."""
    path = data_dir or os.path.join(ROOT, "data", dataset)
    if dataset == "facts" and not data_dir and prepare_facts and not os.path.exists(os.path.join(path, "meta.json")):
        from prepare import facts

        facts.main([])
    return path


def load_meta(data_dir, dataset):
    """A dataset's meta.json, checked against its bins; a one-line error naming the prepare command."""
    meta_path = os.path.join(data_dir, "meta.json")
    script = os.path.join(ROOT, "prepare", f"{dataset}.py")
    hint = f"run `python prepare/{dataset}.py` first" if os.path.exists(script) else \
        "run the prepare/ script that writes it"
    for f in ("train.bin", "val.bin", "meta.json"):
        if not os.path.exists(os.path.join(data_dir, f)):
            raise UserError(f"{os.path.join(data_dir, f)} not found: {hint}")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        itemsize = np.dtype(meta["dtype"]).itemsize
        for split in ("train", "val"):
            size = os.path.getsize(os.path.join(data_dir, f"{split}.bin"))
            want = meta["splits"][split]["tokens"] * itemsize
            if size != want:
                raise UserError(f"{data_dir}/{split}.bin has {size} bytes but meta.json says {want}: "
                                f"the data is incomplete or stale, {hint}")
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{meta_path} is unreadable or incomplete ({e!r}): {hint}")
    for split in ("train", "val"):
        if meta["splits"][split]["tokens"] == 0:
            raise UserError(f"the {split} split of {data_dir} is empty: prepare the data again so that it has "
                            f"one (e.g. with a val file of its own: --data_files train=A val=B)")
    return meta


def sampled_max_ids(data_dir, meta, sample=1 << 20):
    """{split: the largest token id in the first and last `sample` tokens of its bin}: a multi-GB bin is never
    read whole."""
    dtype, tops = np.dtype(meta["dtype"]), {}
    for split in ("train", "val"):
        n, tops[split] = meta["splits"][split]["tokens"], 0
        for start in sorted({0, max(0, n - sample)}):
            part = np.fromfile(os.path.join(data_dir, f"{split}.bin"), dtype=dtype, count=min(sample, n - start),
                               offset=start * dtype.itemsize)
            tops[split] = max(tops[split], int(part.max(initial=0)))
    return tops


def max_token_id(data_dir, meta, sample=1 << 20):
    """The largest token id in the bins: meta.json's max_token_id (recorded at prepare time), else the
    largest in a slice of each bin (its first and last `sample` tokens), so a multi-GB bin is never read."""
    if meta.get("max_token_id") is not None:
        return meta["max_token_id"]
    return max(sampled_max_ids(data_dir, meta, sample).values())


def prepare_hint(meta):
    """What to run to write a dataset again."""
    script = f"prepare/{meta.get('name')}.py"
    return f"python {script}" if os.path.exists(os.path.join(ROOT, script)) else "the prepare/ script that wrote it"


def check_token_ids(data_dir, meta, vocab_size, sample=1 << 20):
    """Refuse data whose token ids do not fit the model's embedding table, before anything is written.
    The ends of the bins are read even when meta.json records max_token_id: bins written again after
    meta.json (a stale max_token_id) are caught too."""
    recorded = meta.get("max_token_id")
    for split, top in sampled_max_ids(data_dir, meta, sample).items():
        if top >= vocab_size and recorded is not None and top > recorded:
            raise UserError(f"{os.path.join(data_dir, split + '.bin')} holds token id {top} but its meta.json says "
                            f"the largest is {recorded} (max_token_id), and the model's vocab_size is {vocab_size}: "
                            f"meta.json is stale; prepare the data again ({prepare_hint(meta)})")
    top = max_token_id(data_dir, meta, sample)
    if top >= vocab_size:
        raise UserError(f"{data_dir} holds token id {top} but the model's vocab_size is {vocab_size}: the bins "
                        f"and meta.json do not match: prepare the data again")


class Batches:
    """Random (x, y) windows from a split: y is x shifted by one token.

    With respect_doc_boundaries (the default) no window spans two documents: each picks a document
    (uniformly: a short one as often as a long one) and starts inside it, at its first token when the
    document fits in the context, and targets past the document's end are -1 (no loss). On the facts
    corpus position t in the context is then position t in a document, so the per-position loss shows
    how much reading the document so far helps. A dataset that is one long text (shakespeare) gets
    ordinary random windows either way. False gives GPT-2/nanoGPT windows anywhere in the token stream,
    across documents.
    """

    def __init__(self, data_dir, meta, block_size, batch_size, device, respect_doc_boundaries=True, prefix_lm=False):
        self.paths = {s: os.path.join(data_dir, f"{s}.bin") for s in ("train", "val")}
        self.dtype = np.dtype(meta["dtype"])
        self.vocab_size = meta.get("vocab_size")  # every id in a batch is checked against it (a bin changed since)
        self.block_size, self.batch_size, self.device, self.prefix_lm = block_size, batch_size, device, prefix_lm
        for split in ("train", "val"):
            n = meta["splits"][split]["tokens"]
            if n <= block_size:
                raise UserError(f"block_size {block_size} needs more than {n} tokens, which is all the "
                                f"{split} split has: lower --block_size")
        self.docs = None
        if respect_doc_boundaries:
            self.docs = {}
            for split in ("train", "val"):
                path = os.path.join(data_dir, f"{split}.docs.npy")
                if not os.path.exists(path):
                    raise UserError(f"{path} not found: respect_doc_boundaries needs the document index that "
                                    f"the prepare/ scripts write; prepare the data again or pass "
                                    f"--respect_doc_boundaries=False")
                docs = np.load(path, mmap_mode="r")  # (n_docs, 2): start, prefix length
                self.docs[split] = (np.append(docs[:, 0], meta["splits"][split]["tokens"]), docs[:, 1])

    def get(self, split, generator):
        """(x, y, prefix_len): (B, T) inputs and targets, and for prefix_lm the (B,) prefix lengths."""
        # A fresh memmap per batch: keeping one open lets the page cache count against our memory
        # (nanoGPT's fix for its "memory leak"); opening is microseconds.
        data = np.memmap(self.paths[split], dtype=self.dtype, mode="r")
        B, T = self.batch_size, self.block_size
        if self.docs is None:
            return self.windows(data, split, torch.randint(len(data) - T, (B,), generator=generator).numpy(), None,
                                generator)
        bounds, _ = self.docs[split]
        d = torch.randint(len(bounds) - 1, (B,), generator=generator).numpy()
        lo, hi = bounds[d], bounds[d + 1]
        slack = np.maximum(hi - lo - T - 1, 0)  # how far a window can move inside its document
        starts = lo + (torch.rand(B, generator=generator).numpy() * (slack + 1)).astype(np.int64)
        return self.windows(data, split, starts, d, generator)

    def sweep(self, split, generator, batch_size=None):
        """Batches that score every target token of the split once: consecutive windows from the
        start (of each document, with respect_doc_boundaries). eval_iters=0 evaluates on these: the
        exact loss of the split, with none of the sampling noise of a few random batches (nanoGPT's
        1.886 on the CPU recipe is one such draw: docs/speed.md). A last piece shorter than the
        context is dropped when the text is one stream. batch_size: windows per batch (default: the
        Batches' batch_size)."""
        data = np.memmap(self.paths[split], dtype=self.dtype, mode="r")
        starts, d = self.sweep_starts(split, len(data))
        B = batch_size or self.batch_size
        for i in range(0, len(starts), B):
            yield self.windows(data, split, starts[i:i + B], None if d is None else d[i:i + B], generator)

    def sweep_starts(self, split, n_tokens):
        """(starts, documents or None) of sweep()'s windows."""
        T = self.block_size
        if self.docs is None:
            return np.arange(0, n_tokens - T, T), None
        bounds, _ = self.docs[split]
        per_doc = np.maximum(bounds[1:] - bounds[:-1] + T - 2, 0) // T  # windows for a document's targets
        d = np.repeat(np.arange(len(per_doc)), per_doc)
        first = np.repeat(np.cumsum(per_doc) - per_doc, per_doc)  # index of its document's first window
        return bounds[d] + T * (np.arange(len(d)) - first), d

    def n_windows(self, split):
        """How many windows sweep() and whole() cover."""
        n_tokens = os.path.getsize(self.paths[split]) // self.dtype.itemsize
        return len(self.sweep_starts(split, n_tokens)[0])

    def whole(self, split, generator):
        """The whole split as one batch, every window of sweep() once: full-batch training (grokking)."""
        return next(self.sweep(split, generator, batch_size=sys.maxsize))

    def windows(self, data, split, starts, d, generator):
        """The batch of windows starting at `starts` (inside documents d, unless d is None)."""
        B, T = len(starts), self.block_size
        # (B, T + 1): one gather for the whole batch, not a Python loop of slices
        idx = starts[:, None] + np.arange(T + 1)
        w = torch.from_numpy(data[idx if d is None else np.minimum(idx, len(data) - 1)].astype(np.int64))
        if self.vocab_size is not None and w.numel() and int(w.max()) >= self.vocab_size:  # the start-up check reads only the bins' ends
            raise UserError(f"{self.paths[split]} holds token id {int(w.max())}, beyond the data's vocabulary "
                            f"({self.vocab_size} tokens in meta.json): the bins and meta.json do not match: "
                            f"prepare the data again")
        if d is None:
            x, y = w[:, :-1], w[:, 1:]
            prefix = np.zeros(B, dtype=np.int64)
        else:
            # target t exists while it is inside the document; the rest is 0 (input) and -1 (no loss)
            bounds, prefixes = self.docs[split]
            lo, hi = bounds[d], bounds[d + 1]
            valid = torch.from_numpy(idx[:, 1:] < hi[:, None])
            x = torch.where(valid, w[:, :-1], 0)
            y = torch.where(valid, w[:, 1:], -1)
            prefix = np.clip(lo + prefixes[d] - starts, 0, T)  # what is left of the recorded prefix
        prefix_len = None
        if self.prefix_lm:
            # documents without a recorded prefix (plain text) get a split point sampled per sequence
            sampled = torch.randint(1, T, (B,), generator=generator).numpy()
            prefix_len = torch.from_numpy(np.where(prefix > 0, prefix, sampled)).to(self.device)
        if self.device.startswith("cuda"):  # pinned memory lets the copy overlap with compute
            x, y = x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        else:
            x, y = x.to(self.device), y.to(self.device)
        return x, y, prefix_len


class PrimingBatches(Batches):
    """freeze_base: each example is one document split at its recorded prefix (the facts, the
    "documentation"): the prefix primes the bias layers, the rest (prompt and answer) is the input.

    get() returns (x, y, {"priming": (doc, doc_len)}): the model primes on the right-padded
    documents and runs x primed, in one forward call. Documents without a prefix are skipped; a
    prefix longer than block_size keeps its first block_size tokens.
    """

    def __init__(self, data_dir, meta, block_size, batch_size, device):
        super().__init__(data_dir, meta, block_size, batch_size, device, respect_doc_boundaries=True)
        self.primable = {}
        for split, (bounds, prefixes) in self.docs.items():
            self.primable[split] = np.flatnonzero((prefixes > 0) & (bounds[1:] - bounds[:-1] > prefixes + 1))
            if not len(self.primable[split]):
                raise UserError(f"no {split} document has a prefix to prime with: freeze_base needs a dataset "
                                f"whose documents record one (prepare/priming.py, prepare/facts.py)")

    def get(self, split, generator):
        data = np.memmap(self.paths[split], dtype=self.dtype, mode="r")
        bounds, prefixes = self.docs[split]
        B, T = self.batch_size, self.block_size
        pick = self.primable[split][torch.randint(len(self.primable[split]), (B,), generator=generator).numpy()]
        doc_len = np.minimum(prefixes[pick], T)
        doc = torch.zeros(B, int(doc_len.max()), dtype=torch.int64)
        x = torch.zeros(B, T, dtype=torch.int64)
        y = torch.full((B, T), -1, dtype=torch.int64)
        for b, d in enumerate(pick):
            lo, p, hi = bounds[d], prefixes[d], bounds[d + 1]
            doc[b, :doc_len[b]] = torch.from_numpy(data[lo:lo + doc_len[b]].astype(np.int64))
            w = torch.from_numpy(data[lo + p:min(hi, lo + p + T + 1)].astype(np.int64))
            x[b, :len(w) - 1], y[b, :len(w) - 1] = w[:-1], w[1:]
        doc_len = torch.from_numpy(doc_len)
        return x.to(self.device), y.to(self.device), {"priming": (doc.to(self.device), doc_len.to(self.device))}


class Priming(Extra):
    """freeze_base, train.py's extra (helpers/extras.py): PrimingBatches in place of Batches."""

    def batches(self, data_dir, meta, mcfg, cfg, device):
        return PrimingBatches(data_dir, meta, mcfg.block_size, cfg.batch_size, device)


class FullBatch(Extra):
    """full_batch, train.py's extra (helpers/extras.py): every step trains on the whole train split."""

    def train_batches(self, batches, generator):
        return (lambda: batches.whole("train", generator)), batches.n_windows("train")


def forward_kwargs(extra):
    """The third item of a batch as forward() keywords: prefix_len (Batches) or a dict (PrimingBatches)."""
    return extra if isinstance(extra, dict) else {"prefix_len": extra}



# -----------------------------------------------------------------------------
# Prompts: text (or FILE:path) to token ids, for sample.py and the tools.

def read_text(text):
    """The text itself, or the contents of the file when it is written FILE:path."""
    if not text.startswith("FILE:"):
        return text
    if not os.path.exists(text[5:]):
        raise UserError(f"prompt file {text[5:]} not found")
    with open(text[5:], encoding="utf-8") as f:
        return f.read()


def encode(tok, text, what="the prompt"):
    """Token ids of text (FILE:path allowed), with a one-line error for text the tokenizer cannot take."""
    try:
        ids = tok.encode(read_text(text))
    except ValueError as e:
        raise UserError(f"cannot encode {what}: {e}")
    if not ids:
        raise UserError(f"{what} encodes to no tokens: give it some text")
    return ids
