"""
Evaluation: the loss of a model on both splits, and at every position of the context.

The per-position loss is this repo's central picture: a model that learns from its context has a
loss that falls along the sequence (in-context learning). `evaluate` returns it for val, with how
many targets each position had, so plots can leave out positions that few documents reach.
"""

import math
import os

import numpy as np
import torch

from helpers.data import forward_kwargs
from helpers.extras import Extra
from model import has_loss


def unigram_distribution(path, dtype, vocab_size, max_tokens=50_000_000, chunk=1_000_000):
    """The data's token frequencies (vocab_size,), counted over the first max_tokens tokens of a bin.

    A chunked bincount, each chunk read afresh (np.fromfile, not one long-lived memmap whose touched
    pages would stay resident): memory stays at one chunk (~10 MB with bincount's int64 copy), and
    a 9B-token dataset costs no more than its first 50M tokens (a sample: plenty for a unigram
    estimate, unless the data is sorted by topic). tools/bench_memory.py checks that peak RSS is flat.
    """
    itemsize = np.dtype(dtype).itemsize
    n = min(os.path.getsize(path) // itemsize, max_tokens)
    counts = np.zeros(vocab_size, dtype=np.int64)
    for i in range(0, n, chunk):
        part = np.fromfile(path, dtype=dtype, count=min(chunk, n - i), offset=i * itemsize)
        counts += np.bincount(part, minlength=vocab_size)
    return torch.from_numpy(counts / counts.sum()).float()


@torch.no_grad()
def evaluate(model, batches, eval_iters, ctx, seed, bytes_per_token, unigram=None):
    """Mean loss and accuracy per split over eval_iters batches (0: the whole split, Batches.sweep); for val also
    loss per position (position_loss), how many targets each position had (position_count) and mean_p.

    Batches come from a generator seeded the same way at every eval, so successive evals (and
    runs with the same seed) score the very same tokens and their differences are not sampling noise.

    <split>_acc is the share of scored targets that are the model's argmax: next-token accuracy, and on
    a dataset that scores only an answer token (prepare/modular.py) the exact-match accuracy.

    With `unigram` (the training data's token frequencies) it also returns unigram_kl =
    KL(unigram || q), q the model's predicted next-token distribution averaged over the val tokens.
    A fresh model's q is flat and its first lesson is the token frequencies, which shows up as this
    falling early in training. This direction stays finite: q is a softmax, never 0, whereas the
    reverse would be infinite on any token the data never contains (e.g. GPT-2's padded vocabulary).
    """
    model.eval()
    out = {}
    for k, split in enumerate(("train", "val")):
        g = torch.Generator().manual_seed(seed + 1000 + k)
        loss_sum, count, p_sum = torch.zeros(batches.block_size), torch.zeros(batches.block_size), 0.0
        q_sum = 0.0  # summed predicted distributions, (vocab,)
        correct = 0  # scored targets that are the argmax
        split_batches = (batches.get(split, g) for _ in range(eval_iters)) if eval_iters else batches.sweep(split, g)
        for x, y, extra in split_batches:
            kw = forward_kwargs(extra)
            prefix_len = kw.get("prefix_len")
            with ctx:
                logits, loss = model(x, y, reduction="none", **kw)  # (B, T), 0 where no target
            valid = has_loss(y, prefix_len).float()
            correct += ((logits.argmax(-1) == y) & (valid > 0)).sum().item()
            if unigram is not None and split == "val":
                q_sum += torch.einsum("btv,bt->v", logits.softmax(-1, dtype=torch.float32), valid).cpu()
            loss, valid = loss.float().cpu(), valid.cpu()
            loss_sum += loss.sum(0)  # summed per position
            count += valid.sum(0)
            p_sum += (torch.exp(-loss) * valid).sum().item()
        out[f"{split}_loss"] = (loss_sum.sum() / count.sum()).item()
        out[f"{split}_bpb"] = out[f"{split}_loss"] / math.log(2) / bytes_per_token[split]
        out[f"{split}_acc"] = correct / count.sum().item()
        if split == "val":
            per_pos = (loss_sum / count.clamp(min=1)).tolist()  # positions no document reaches: None
            out["position_loss"] = [round(v, 5) if n > 0 else None for v, n in zip(per_pos, count.tolist())]
            out["position_count"] = [int(n) for n in count.tolist()]
            out["mean_p"] = p_sum / count.sum().item()  # mean probability of the right token
            if unigram is not None:
                q = q_sum / count.sum()
                out["unigram_kl"] = torch.sum(unigram * (unigram.clamp(min=1e-30).log() - q.log())).item()
    model.train()
    return out


class TargetRace(Extra):
    """target_val_loss or target_val_acc, train.py's extra (helpers/extras.py): the race to a target.

    Stops at the first eval that reaches it and records reached_target in every row, and
    time_to_target_s (wall time since the loop started, evals included) in the row that reached it."""

    def __init__(self, target_val_loss=0.0, target_val_acc=0.0):
        self.target_loss, self.target_acc, self.reached = target_val_loss, target_val_acc, False
        self.target = f"val loss {target_val_loss}" if target_val_loss else f"val acc {target_val_acc}"

    def should_stop(self, row):
        self.reached = row["reached_target"] = (row["val_loss"] <= self.target_loss if self.target_loss
                                                else row["val_acc"] >= self.target_acc)
        if self.reached:
            row["time_to_target_s"] = row["elapsed_s"]
            print(f"reached target {self.target} at iter {row['iter']}: "
                  f"time to target {row['elapsed_s']:.1f}s (evals included)")
        return self.reached

    def finish(self, iter_num):
        if not self.reached:
            print(f"target {self.target} not reached in {iter_num} iterations")
