"""
Optimizers: AdamW (GPT-2's) or Muon + AdamW, the tangent projection of gradients, and the rule that
stops a diverging run. train.py's step (train_step) and its schedule (get_lr) use them.
"""

import torch

from helpers.config import UserError


def muon_params(model):
    """The weights Muon optimizes: every nn.Linear inside the transformer blocks (attention's c_attn
    and c_proj, the MLP's c_fc and c_proj) and the layer_widths maps between them. Not the
    embeddings, the head, gains, biases, or 2-D parameters that are not matrices of a linear map
    (zero_value_attn's sink keys, cross_layer_kv's offsets)."""
    return [m.weight for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name.startswith(("transformer.h.", "resize."))
            and m.weight.requires_grad]


class Optimizers:
    """Several optimizers that train.py steps, schedules, zeroes and checkpoints as one.

    Enough of torch.optim.Optimizer's interface for the loop and GradScaler: param_groups (all of
    them, so the schedule reaches every group), step, zero_grad, state_dict, load_state_dict.
    """

    def __init__(self, *optimizers):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [g for o in self.optimizers for g in o.param_groups]

    def step(self):
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none=True):
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state):
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)


def make_optimizer(model, cfg, device_type):
    """AdamW (model.configure_optimizers), or Muon + AdamW when cfg.optimizer == "muon".

    Muon (Jordan et al. 2024) replaces each hidden matrix's momentum update by the nearest
    semi-orthogonal matrix (five Newton-Schulz iterations), so every direction of the matrix learns at
    the same rate. Embeddings, the head and vectors stay on AdamW, as its authors prescribe.

    Every group carries lr_ratio, its peak learning rate over learning_rate: the loop sets each
    group's lr to the schedule's lr times it, so one schedule drives both optimizers.
    """
    if cfg.optimizer == "adamw":
        optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device_type)
        for g in optimizer.param_groups:
            g["lr_ratio"] = 1.0
        return optimizer
    hidden = muon_params(model)
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    muon = torch.optim.Muon(hidden, lr=cfg.muon_lr, momentum=cfg.muon_momentum, weight_decay=cfg.muon_weight_decay)
    muon.param_groups[0]["lr_ratio"] = cfg.muon_lr / cfg.learning_rate
    # the rest (embeddings, head, gains, biases) grouped as plain AdamW groups them
    adamw = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device_type,
                                       params=rest)
    for g in adamw.param_groups:
        g["lr_ratio"] = 1.0
    return Optimizers(muon, adamw)


@torch.no_grad()
def project_tangent(params, eps=1e-30):
    """Tangent Descent: ⊥Grad (Prieto et al., "Grokking at the Edge of Numerical Stability", ICLR 2025,
    arXiv 2501.04697), applied to the gradients in place.

    Design note 004 asks to test "Grant Descent aka Tangent Descent" and defines neither. ⊥Grad is
    the closest published reading: it descends along the tangent space of the sphere each weight lies
    on. For each parameter tensor w with gradient g (both flattened):

        g_perp = g - (<g, w> / <w, w>) w,   then   g <- g_perp * |g| / |g_perp|

    The removed part, along w itself, is the direction that only rescales the weights and so the
    logits (the paper's "naive loss minimization": the loss falls with no change in the predictions).
    The rescale to the original norm is the authors' (their orthograd.py), so the step size and the
    global norm that grad_clip sees are unchanged. Every tensor is projected, as in their code:
    matrices, the embedding (tied to the head, the most direct path to the logits' scale) and
    vectors too, since the final norm's gain scales the logits as well. A zero tensor (a bias at
    init, a zero-initialised projection) has no direction and keeps its gradient.
    Stateless, so it works under any optimizer (AdamW, Muon) and resumes exactly.
    """
    for p in params:
        if p.grad is None:
            continue
        w, g = p.detach().flatten().float(), p.grad.flatten().float()
        g_perp = g - (torch.dot(w, g) / (torch.dot(w, w) + eps)) * w
        g_perp *= g.norm() / (g_perp.norm() + eps)
        p.grad.copy_(g_perp.view_as(p.grad))


def count_nonfinite(finite, loss, iter_num, skipped, cfg):
    """After a step: how many non-finite steps were skipped so far; when that is more than
    cfg.skip_nonfinite the run has diverged, and stops with one line that says what to try."""
    if finite:
        return skipped
    skipped += 1
    if skipped > cfg.skip_nonfinite:
        clip = f"a lower --grad_clip (now {cfg.grad_clip:g})" if cfg.grad_clip > 0 else "--grad_clip=1.0"
        raise UserError(f"the run diverged: the training loss or gradient is not finite at iteration {iter_num} "
                        f"(loss {loss.item():.4g}), so it stops and saves nothing more; try a lower --learning_rate "
                        f"(now {cfg.learning_rate:g}), {clip} or more --warmup_iters")
    print(f"iter {iter_num}: loss or gradient not finite (loss {loss.item():.4g}): update skipped "
          f"({skipped} of --skip_nonfinite={cfg.skip_nonfinite})")
    return skipped
