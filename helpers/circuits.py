"""
Circuits: which heads and MLPs carry a prediction, read and rewritten through model.py's hook points
(docs/analysis.md, "Circuits"). The standard measurements of TransformerLens users, on this repo's models:

    logit_attribution(model, task)  direct logit attribution: how much each head, MLP, embedding and bias
                                    writes along the answer-minus-wrong direction of the unembedding
    patch_heads(model, task)        activation patching: each head's output (hook_z) and each MLP's output,
                                    one position at a time, copied from the clean run into the corrupted one
    path_patch(model, task)         path patching: a sender head's clean output reaching one later head only
                                    through that head's queries, keys or values

All measure a Task: a clean prompt, a corrupted one of the same length, and at chosen positions a right
and a wrong next token; the metric is their logit difference, averaged. induction_task builds the
standard one for induction heads: random tokens repeated.
"""

import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn

from helpers.config import UserError


@dataclass
class Task:
    """What is measured: the logit of `answer` minus that of `wrong`, averaged over the batch and the
    `scored` positions."""
    clean: torch.Tensor  # (B, T) token ids the model gets right
    corrupt: torch.Tensor  # (B, T) the same prompts with what the answer depends on changed
    answer: torch.Tensor  # (B, T) the right next token at each position (read where scored)
    wrong: torch.Tensor  # (B, T) the token it is measured against
    scored: torch.Tensor  # (T,) bool: the positions that count

    def logit_diff(self, logits):
        """(N * B, T, vocab) logits of N copies of the batch, one after another -> (N,) mean logit differences."""
        n = logits.size(0) // self.answer.size(0)
        pair = torch.stack([self.answer, self.wrong], -1).repeat(n, 1, 1).to(logits.device)  # (N * B, T, 2)
        picked = logits.gather(-1, pair)
        return (picked[..., 0] - picked[..., 1])[:, self.scored].reshape(n, -1).mean(1)


def induction_task(vocab_size, half, batch=8, seed=0):
    """Random tokens A (batch, half) repeated, [A A], against [A' A]: the first copy replaced by other
    random tokens (A'[i] != A[i]). Scored: the second copy's positions half .. 2 half - 2, each predicting
    the token that followed its earlier match. answer: that token, A[i + 1]; wrong: the corrupted copy's
    token in its place, A'[i + 1]. Only an induction mechanism tells them apart, and only on the clean prompt."""
    if half < 2:
        raise UserError(f"the induction task needs at least 2 repeated tokens, got half={half}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(vocab_size, (batch, half), generator=g)
    other = (a + torch.randint(1, vocab_size, (batch, half), generator=g)) % vocab_size
    clean, corrupt = torch.cat([a, a], 1), torch.cat([other, a], 1)
    answer, wrong = torch.zeros_like(clean), torch.zeros_like(clean)
    answer[:, :-1] = clean[:, 1:]
    wrong[:, half:-1] = other[:, 1:]
    scored = torch.zeros(2 * half, dtype=torch.bool)
    scored[half:-1] = True
    return Task(clean, corrupt, answer, wrong, scored)


# -----------------------------------------------------------------------------
# Hook points by layer (shared blocks fire one hook point once per layer that runs them)

def layer_hooks(model, fns):
    """model.hooks with points named by layer: {(layer, "attn.hook_z"): fn}, layer None for the model's own
    points ("hook_embed"). With n_shared_blocks a block runs in several layers and its hook point fires
    once per use, in order: fn sees only its own layer's."""
    blocks = [model.config.block_of_layer(i) for i in range(model.config.n_layer)]
    by_name = {}
    for (layer, point), fn in fns.items():
        if layer is None:
            by_name[point] = [fn]
            continue
        uses = [i for i, b in enumerate(blocks) if b == blocks[layer]]
        by_name.setdefault(f"transformer.h.{blocks[layer]}.{point}", [None] * len(uses))[uses.index(layer)] = fn

    def dispatch(per_use):
        calls = itertools.count()

        def hook(act):
            fn = per_use[next(calls) % len(per_use)]
            return None if fn is None else fn(act)
        return hook
    return model.hooks({name: dispatch(per_use) for name, per_use in by_name.items()})


@torch.no_grad()
def run_with_layer_cache(model, idx, keys):
    """(logits, {(layer, point): activation}) for keys as in layer_hooks."""
    return run_with_layer_cache_under(model, idx, keys, {})


@torch.no_grad()
def run_with_layer_cache_under(model, idx, keys, patches):
    """run_with_layer_cache while the layer_hooks `patches` replace other activations (keys apart from them)."""
    cache = {}
    fns = {key: (lambda act, key=key: cache.__setitem__(key, act.detach())) for key in keys}
    with layer_hooks(model, {**patches, **fns}):
        logits, _ = model(idx)
    return logits, cache


# -----------------------------------------------------------------------------
# Direct logit attribution

def check_stream_is_a_sum(config):
    """Direct attribution splits the last residual stream into the parts written into it; refuse, in one
    line, the variants where it is not their sum or the head is not linear in it."""
    why = {"residual_dims": config.residual_dims >= 0, "residual_root": config.residual_root != "token",
           "layer_widths": len(set(config.widths())) > 1, "logit_softcap": config.logit_softcap > 0}
    bad = [k for k, v in why.items() if v]
    if bad:
        raise UserError(f"direct logit attribution needs the last residual stream to be the sum of what the "
                        f"embeddings, heads and MLPs write and the head to be linear; {bad[0]} breaks that: "
                        f"use activation patching (patch) for this model")


@torch.no_grad()
def logit_attribution(model, task):
    """Each part's direct contribution to the task's logit difference on the clean prompt, and the model's
    own logit difference, which they sum to: ({part: value}, total).

    Parts: "embed", "pos_embed", "L{i}H{h}" (each head: its hook_z through its columns of c_proj), "L{i}
    attn bias", "L{i} MLP" and "ln_f bias". The final norm's scale, a function of the whole stream, is
    frozen at its value on this prompt (TransformerLens's cached scale): the norm then maps each part
    linearly, and the parts' logits add up.
    """
    check_stream_is_a_sum(model.config)
    c, L = model.config, model.config.n_layer
    points = [(i, p) for i in range(L) for p in ["attn.hook_z"] + ([] if c.attn_only else ["hook_mlp_out"])]
    keys = points + [(L - 1, "hook_resid_post"), (None, "hook_embed")] + ([] if c.rotary else [(None, "hook_pos_embed")])
    logits, cache = run_with_layer_cache(model, task.clean, keys)
    final, ln = cache[L - 1, "hook_resid_post"], model.transformer.ln_f
    centred = not isinstance(ln, nn.RMSNorm)  # LayerNorm subtracts the mean first; RMSNorm does not
    eps = ln.eps if ln.eps is not None else torch.finfo(final.dtype).eps
    spread = final - final.mean(-1, keepdim=True) if centred else final
    scale = (spread.pow(2).mean(-1, keepdim=True) + eps).sqrt()  # (B, T, 1), frozen
    eye = torch.eye(final.size(-1), dtype=final.dtype, device=final.device)
    unembed = model.head(eye).T  # (vocab, C): each token's output direction (tie_dims: [A | C])
    direction = unembed[task.answer] - unembed[task.wrong]  # (B, T, C)
    gain = ln.weight

    def along(part):  # (B, T, C) or broadcastable: its share of the logit difference
        part = part - part.mean(-1, keepdim=True) if centred else part
        return (part / scale * gain * direction).sum(-1)[:, task.scored].mean().item()

    parts = {"embed": along(cache[None, "hook_embed"])}
    if not c.rotary:
        parts["pos_embed"] = along(cache[None, "hook_pos_embed"])
    for i in range(L):
        attn = model.transformer.h[c.block_of_layer(i)].attn
        w = attn.c_proj.merged_weight() if hasattr(attn.c_proj, "merged_weight") else attn.c_proj.weight
        z = cache[i, "attn.hook_z"]  # (B, nh, T, hs)
        per_head = torch.einsum("bhtd,chd->bhtc", z, w.view(w.size(0), c.n_head, -1))  # (B, nh, T, C)
        for h in range(c.n_head):
            parts[f"L{i}H{h}"] = along(per_head[:, h])
        if attn.c_proj.bias is not None:
            parts[f"L{i} attn bias"] = along(attn.c_proj.bias)
        if not c.attn_only:
            parts[f"L{i} MLP"] = along(cache[i, "hook_mlp_out"])
    if getattr(ln, "bias", None) is not None:  # LayerNorm's own bias (RMSNorm has none)
        parts["ln_f bias"] = (ln.bias * direction).sum(-1)[:, task.scored].mean().item()
    return parts, task.logit_diff(logits).item()


# -----------------------------------------------------------------------------
# Activation patching

@torch.no_grad()
def patched_metric(model, target, metric, key, source_act, masks, rows=512):
    """metric of the target run (B, T) once per mask: the activation at key (layer, point) replaced by
    source_act wherever the mask is True. masks (N, ...) broadcast against source_act; returns (N,).
    The N runs go in batches of about `rows` sequences."""
    B, out = target.size(0), []
    for m in masks.split(max(1, rows // B)):
        n = m.size(0)

        def patch(act, m=m, n=n):
            return torch.where(m, source_act, act.view(n, *source_act.shape)).view(act.shape)
        with layer_hooks(model, {key: patch}):
            logits, _ = model(target.repeat(n, 1))
        out.append(metric(logits))
    return torch.cat(out)


@torch.no_grad()
def patch_sweep(model, source, target, metric):
    """Patch one head at one position, or at every position at once, and likewise each MLP's output, from the
    source run into the target run. Returns (metric of the source run, of the target run, {"heads": (L, nh, T),
    "heads_all": (L, nh), "mlps": (L, T), "mlps_all": (L,)}), each entry the patched target run's metric
    (no MLP entries for attn_only models)."""
    c, T = model.config, target.size(1)
    nh, dev = c.n_head, target.device
    keys = [(i, "attn.hook_z") for i in range(c.n_layer)] + ([] if c.attn_only else
                                                               [(i, "hook_mlp_out") for i in range(c.n_layer)])
    source_logits, cache = run_with_layer_cache(model, source, keys)
    target_logits, _ = model(target)
    # against hook_z (B, nh, T, hs): one mask per (head, position), then one per head at every position
    one = torch.eye(nh * T, dtype=torch.bool, device=dev).view(-1, 1, nh, T, 1)
    every = torch.eye(nh, dtype=torch.bool, device=dev).view(nh, 1, nh, 1, 1).expand(nh, 1, nh, T, 1)
    head_masks = torch.cat([one, every])
    # against hook_mlp_out (B, T, C): one mask per position, then every position
    mlp_masks = torch.cat([torch.eye(T, dtype=torch.bool, device=dev), torch.ones(1, T, dtype=torch.bool,
                                                                                  device=dev)]).view(T + 1, 1, T, 1)
    out = {}
    for point, masks, name in [("attn.hook_z", head_masks, "heads"), ("hook_mlp_out", mlp_masks, "mlps")]:
        if (0, point) not in cache:
            continue
        scores = torch.stack([patched_metric(model, target, metric, (i, point), cache[i, point], masks)
                              for i in range(c.n_layer)])  # (L, masks)
        split = scores.size(1) - (nh if name == "heads" else 1)
        out[name] = scores[:, :split].reshape(c.n_layer, -1, T).squeeze(1)  # (L, nh, T) or (L, T)
        out[name + "_all"] = scores[:, split:].squeeze(1)  # (L, nh) or (L,)
    return metric(source_logits).item(), metric(target_logits).item(), out


def patch_heads(model, task):
    """Activation patching by head and position, clean into corrupt: the share of the logit difference each
    patch restores, (patched - corrupt) / (clean - corrupt): 0 = still corrupted, 1 = clean.
    Returns ({"heads": (L, nh, T), "heads_all": (L, nh), "mlps": (L, T), "mlps_all": (L,)} as in patch_sweep,
    clean logit difference, corrupted one). One position restores at most its share of the scored positions;
    the _all entries patch every position at once."""
    clean, corrupt, scores = patch_sweep(model, task.clean, task.corrupt, task.logit_diff)
    if abs(clean - corrupt) < 1e-6:
        raise UserError("the clean and corrupted prompts give the same logit difference: nothing to restore; "
                        "corrupt what the answer depends on")
    return {k: ((v - corrupt) / (clean - corrupt)).cpu() for k, v in scores.items()}, clean, corrupt


@torch.no_grad()
def path_patch(model, task, inputs=("q", "k", "v")):
    """Path patching (Wang et al. 2022, the IOI circuit): the share of the logit difference restored when a
    sender head's clean output reaches a later receiver head only through the receiver's queries, keys or
    values. Returns {input: (L, nh, L, nh)} indexed [sender layer, sender head, receiver layer, receiver
    head], NaN where the receiver is not in a later layer.

    For each sender: the corrupted prompt runs with the sender's hook_z taken from the clean run and every
    other head's frozen at its corrupted value (MLPs recomputed), and every later head's q, k and v are
    recorded; then, for each receiver and input, the corrupted prompt runs again with only that input of
    that head replaced by the recorded one."""
    c = model.config
    if c.n_kv_head not in (0, c.n_head):
        raise UserError("path patching replaces one head's keys and values; with n_kv_head < n_head a key/value "
                        "head serves several query heads: use a model without it")
    L, nh = c.n_layer, c.n_head
    z = [(i, "attn.hook_z") for i in range(L)]
    clean_logits, clean = run_with_layer_cache(model, task.clean, z)
    corrupt_logits, corrupt = run_with_layer_cache(model, task.corrupt, z)
    ld_clean, ld_corrupt = task.logit_diff(clean_logits).item(), task.logit_diff(corrupt_logits).item()
    if abs(ld_clean - ld_corrupt) < 1e-6:
        raise UserError("the clean and corrupted prompts give the same logit difference: nothing to restore")
    out = {x: torch.full((L, nh, L, nh), float("nan")) for x in inputs}
    for sl, sh in itertools.product(range(L - 1), range(nh)):
        frozen = {key: act.clone() for key, act in corrupt.items()}
        frozen[sl, "attn.hook_z"][:, sh] = clean[sl, "attn.hook_z"][:, sh]
        receivers = [(rl, f"attn.hook_{x}") for rl in range(sl + 1, L) for x in inputs]
        _, recorded = run_with_layer_cache_under(model, task.corrupt, receivers,
                                                 {key: (lambda act, key=key: frozen[key]) for key in z})
        for (rl, point), rh in itertools.product(receivers, range(nh)):
            def put(act, new=recorded[rl, point], rh=rh):
                act = act.clone()
                act[:, rh] = new[:, rh]
                return act
            with layer_hooks(model, {(rl, point): put}):
                logits, _ = model(task.corrupt)
            out[point[-1]][sl, sh, rl, rh] = (task.logit_diff(logits).item() - ld_corrupt) / (ld_clean - ld_corrupt)
    return out
