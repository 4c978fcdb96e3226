"""
Induction heads: find them by their attention, and watch in-context learning appear (docs/induction.md).

An induction head completes patterns: at the second A of "... A B ... A" it attends to the B that
followed the first A and copies it (Olsson et al. 2022). It is found by the attention it pays on
sequences of repeated random tokens, [A][A], A = n tokens: TransformerLens's detection patterns
(head_detector.py), each a (T, T) 0/1 matrix of the keys that a head of that kind attends to:

    previous_token   query i -> key i - 1
    duplicate_token  query i -> every earlier key j < i holding the same token
    induction        query i -> every key j + 1 after such an earlier copy j (the token that followed it)

A head's score on a pattern is the attention it puts on the pattern's keys, averaged over the queries
that have any (TransformerLens's "mul" measure restricted to those rows: 1 for a head that does
exactly this, 0 for one that never does). On [A][A] the duplicate and induction patterns live in the
second half; TransformerLens averages over every query instead, so its score is ours times the share
of queries with a target (about 1/2 on [A][A]).

    icl_score        the loss late in the context minus the loss early in it: in-context learning
    head_scores      every head's three scores on a batch of [A][A], and the loss on each half
"""

import torch
import torch.nn.functional as F

from helpers.config import UserError
from helpers.extras import Extra

PATTERNS = ("previous_token", "duplicate_token", "induction")


def previous_token_pattern(tokens):
    """(..., T) token ids -> (..., T, T): query i attends key i - 1."""
    T = tokens.shape[-1]
    return torch.diag(torch.ones(T - 1), -1).expand(*tokens.shape[:-1], T, T)


def duplicate_token_pattern(tokens):
    """(..., T) -> (..., T, T): query i attends every earlier key with the same token."""
    same = (tokens[..., :, None] == tokens[..., None, :]).float()
    return torch.tril(same, -1)


def induction_pattern(tokens):
    """(..., T) -> (..., T, T): query i attends the key after every earlier copy of its token."""
    dup = duplicate_token_pattern(tokens)
    shifted = torch.zeros_like(dup)
    shifted[..., 1:] = dup[..., :-1]  # key j + 1 for each duplicate j <= i - 1 (i itself when j = i - 1, as TL)
    return shifted


DETECTORS = dict(zip(PATTERNS, (previous_token_pattern, duplicate_token_pattern, induction_pattern)))


def pattern_score(attn, detection):
    """Mean attention on `detection` over the queries that have any target in it.

    attn: (..., T, T) attention weights, rows summing to 1; detection: the same shape, 0/1.
    Returns attn's leading shape (e.g. (B, nh) -> mean over B by the caller). NaN if no query has a target.
    """
    on = (attn * detection).sum(-1)  # (..., T) attention on the pattern, per query
    rows = (detection.sum(-1) > 0).float()  # queries with a target
    return (on * rows).sum(-1) / rows.sum(-1)


def repeated_tokens(vocab_size, half, batch, seed=0):
    """(batch, 2 * half) sequences [A][A] of uniformly random tokens, seeded."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(vocab_size, (batch, half), generator=g)
    return torch.cat([a, a], dim=1)


def check_scorable(config):
    """Refuse, in one line, models whose attention patterns are not one (T, T) matrix per layer."""
    if config.n_shared_blocks:
        raise UserError("head scores need one attention pattern per layer; a shared-block model "
                        "(n_shared_blocks > 0) reuses its blocks' hook points: score a model without it")
    extra = [k for k in ("zero_value_attn", "compress_past", "cross_layer_kv") if getattr(config, k, False)]
    if extra:
        raise UserError(f"head scores need (T, T) attention patterns; {extra[0]} adds or merges keys: "
                        f"score a model without it")


@torch.no_grad()
def head_scores(model, vocab_size, half=None, batch=16, seed=0):
    """Every head's scores on [A][A] batches, and the model's loss on each half.

    Returns {"previous_token" | "duplicate_token" | "induction": (n_layer, n_head) nested lists,
    "first_half_loss": mean loss on A's tokens after its first, "repeat_loss": the same on the
    second copy (its first token is unpredictable, so both leave out position 0 of their half)}.
    half defaults to block_size // 2.
    """
    cfg = model.config
    check_scorable(cfg)
    half = half or cfg.block_size // 2
    tokens = repeated_tokens(vocab_size, half, batch, seed).to(next(model.parameters()).device)
    names = [f"transformer.h.{i}.attn.hook_pattern" for i in range(cfg.n_layer)]
    was_training = model.training
    model.eval()
    try:
        logits, cache = model.run_with_cache(tokens, names)
    finally:
        model.train(was_training)
    out = {}
    tokens = tokens.cpu()
    for kind in PATTERNS:
        det = DETECTORS[kind](tokens)[:, None]  # (B, 1, T, T), broadcast over heads
        out[kind] = [pattern_score(cache[n].float().cpu(), det).mean(0).tolist() for n in names]
    loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), tokens[:, 1:].flatten().to(logits.device),
                           reduction="none").view(batch, -1).cpu()  # (B, 2 * half - 1): loss of token t + 1
    out["first_half_loss"] = loss[:, :half - 1].mean().item()  # targets A[1:]
    out["repeat_loss"] = loss[:, half:].mean().item()  # targets of the copy, A[1:]
    return out


class HeadScores(Extra):
    """head_scores=True, train.py's extra (helpers/extras.py): every head's scores at every eval."""

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size

    def check(self, mcfg):
        check_scorable(mcfg)  # one (T, T) attention pattern per layer, or a one-line error before training

    def metrics(self, model):
        return {"head_scores": head_scores(model, self.vocab_size)}


def icl_score(position_loss, early=0.1, late=0.9, width=0.1):
    """The in-context-learning score of a per-position loss curve (T,): the mean loss over the positions
    within width * T / 2 of late * T minus the same around early * T (None entries left out).

    Negative when the model predicts better late in its context than early; about 0 when it does not
    use its context. With T = 128: positions 109..121 minus positions 6..18 (0-based; position t
    predicts token t + 1 from t + 1 tokens of context).
    """
    T = len(position_loss)

    def around(c):
        lo, hi = round((c - width / 2) * T), round((c + width / 2) * T)
        vals = [v for v in position_loss[max(lo, 0):max(hi, lo + 1)] if v is not None]
        return sum(vals) / len(vals) if vals else None

    a, b = around(late), around(early)
    return None if a is None or b is None else a - b
