"""
The model: a GPT-2 language model in one file, read top to bottom.

    attention (SDPA fast path + readable manual path) -> MLP -> Block -> GPTConfig -> GPT

With every GPTConfig field at its default this is exactly GPT-2 (learned positions, pre-LayerNorm
blocks, GELU MLP x4, tied input/output embeddings, GPT-2 init). Research variants are added as
GPTConfig fields whose defaults leave the baseline untouched.
"""

import inspect
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


class HookPoint(nn.Identity):
    """A named place in the forward pass where analysis reads or replaces an activation.

    It returns its input unchanged; `GPT.run_with_cache` and `GPT.hooks` attach ordinary torch
    forward hooks to it. With no hook attached it costs one Python call (TransformerLens's idea,
    done with torch's own hook machinery).
    """


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention.

    Two implementations compute the same thing: `F.scaled_dot_product_attention` (fast, fused) and
    a manual path that materialises scores, mask and softmax so you can read it and look at the
    attention pattern. They agree to ~1e-6 (test_model.py checks 1e-5).
    """

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # key, query, value projections for all heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        # output projection back into the residual stream
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_PROJ = True  # GPT-2 init scales it by 1/sqrt(2 * n_layer)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.config = config  # attn_impl is read at each call, so analysis can switch paths
        self.hook_pattern = HookPoint()  # (B, nh, T, S) attention weights; manual path only
        self.hook_z = HookPoint()  # (B, nh, T, hs) each head's output, before c_proj mixes the heads

    def forward(self, x, cache=None):
        B, T, C = x.size()  # batch, new tokens, n_embd
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)

        # With a KV cache, the new queries attend over every cached key plus the new ones.
        past = 0
        if cache is not None:
            past = cache[0].size(2) if cache[0] is not None else 0
            if past:
                k = torch.cat([cache[0], k], dim=2)  # (B, nh, past + T, hs)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        S = k.size(2)  # number of keys = past + T

        if self.config.attn_impl == "manual":
            # The readable path: scores, causal mask, softmax, weighted sum of values.
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, S)
            att = att.masked_fill(~causal_mask(T, S, x.device), float("-inf"))
            att = self.hook_pattern(F.softmax(att, dim=-1))
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, hs)
        else:
            # Fused kernel. is_causal aligns the mask to the top-left corner, which is only right
            # when there is no past; with a cache we pass the bottom-right-aligned mask ourselves.
            drop = self.dropout if self.training else 0.0
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
            else:
                mask = causal_mask(T, S, x.device) if T > 1 else None  # one new token sees all
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = self.hook_z(y)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))


def causal_mask(T, S, device):
    """Boolean (T, S) mask, True where query i (the i-th of the last T positions) may see key j."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


class MLP(nn.Module):
    """Position-wise feed-forward: n_embd -> 4*n_embd -> GELU -> n_embd."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_PROJ = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        # the residual stream and what each sublayer writes into it, (B, T, n_embd) each
        self.hook_resid_pre, self.hook_attn_out, self.hook_resid_mid = HookPoint(), HookPoint(), HookPoint()
        self.hook_mlp_out, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x, cache=None):
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln_1(x), cache)))
        x = self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln_2(x))))
        return x


@dataclass
class GPTConfig:
    """Everything that defines the network. Defaults are GPT-2 124M."""

    block_size: int = 1024  # maximum context length (learned position embeddings)
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for speed
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads per block
    n_embd: int = 768  # width of the residual stream
    dropout: float = 0.0  # dropout on attention weights and residual branches
    bias: bool = True  # biases in Linear and LayerNorm layers, like GPT-2; False is a bit better and faster
    attn_impl: str = "sdpa"  # "sdpa": fused kernel; "manual": explicit scores/mask/softmax (analysis reads this)

    def __post_init__(self):
        check_model_config(self)


def check_model_config(c):
    """Reject impossible configurations here, with one line that says what to change."""
    positive = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")
    for name in positive:
        if getattr(c, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.n_embd % c.n_head:
        raise ValueError(f"n_embd ({c.n_embd}) must be divisible by n_head ({c.n_head})")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {c.dropout}")
    if c.attn_impl not in ("sdpa", "manual"):
        raise ValueError(f"attn_impl must be 'sdpa' or 'manual', got {c.attn_impl!r}")


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embeddings
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2016): the output head reads tokens in the space they were
        # embedded in. One matrix, one set of gradients.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)

    def _init_weights(self, module):
        """GPT-2 init: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2*n_layer) so
        the residual stream's variance does not grow with depth."""
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "RESIDUAL_PROJ", False):
                std /= math.sqrt(2 * self.config.n_layer)
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameter count; position embeddings are subtracted by default (the token embeddings
        are shared with the head, so they count as the head's weights)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None, reduction="mean", cache=None):
        """idx: (B, T) token ids. Returns (logits (B, T, vocab), loss).

        targets: (B, T) next-token ids, -1 where no loss is wanted. reduction="none" returns the
        loss of every token as (B, T), which is how train.py measures loss per position.
        cache: a list with one [k, v] pair per layer (see `generate`); positions continue after
        what it already holds.
        """
        B, T = idx.size()
        past = 0 if cache is None or cache[0][0] is None else cache[0][0].size(2)
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # (T,)

        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else cache[i])
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, vocab)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1),
                                   ignore_index=-1, reduction=reduction)
            if reduction == "none":
                loss = loss.view(B, T)
        return logits, loss

    # --- looking inside: hook points (see HookPoint) ---

    def hook_names(self):
        """Names of every hook point, e.g. "transformer.h.0.hook_resid_pre", "transformer.h.1.attn.hook_z"."""
        return [n for n, m in self.named_modules() if isinstance(m, HookPoint)]

    @contextmanager
    def hooks(self, fns):
        """Attach {hook name: fn(activation)} for the duration of a `with` block. A fn that returns a
        tensor replaces the activation (activation patching); one that returns None only reads it."""
        points, handles = dict(self.named_modules()), []
        try:
            for name, fn in fns.items():
                if not isinstance(points.get(name), HookPoint):
                    raise KeyError(f"no hook point named {name!r}; model.hook_names() lists them")
                handles.append(points[name].register_forward_hook(lambda mod, inp, out, fn=fn: fn(out)))
            yield self
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def run_with_cache(self, idx, names=None):
        """Forward pass returning (logits, {hook name: activation}) for `names` (default: all).

        Attention patterns exist only on the manual path, so asking for one runs this pass there.
        """
        names = list(names or self.hook_names())
        cache = {}
        saved_impl = self.config.attn_impl
        if any(n.endswith("hook_pattern") for n in names):
            self.config.attn_impl = "manual"
        try:
            with self.hooks({n: (lambda act, n=n: cache.__setitem__(n, act.detach())) for n in names}):
                logits, _ = self(idx)
        finally:
            self.config.attn_impl = saved_impl
        return logits, cache

    def crop_block_size(self, block_size):
        """Shrink the context (e.g. load a 1024-token checkpoint, train at 256)."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW; weight decay on matrices and embeddings (>= 2-D), none on biases and gains."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **({"fused": True} if fused else {}))

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls (PaLM appendix B) plus attention scores."""
        N = self.get_num_params()
        cfg = self.config
        L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
        return 6 * N + 12 * L * H * Q * T

    def estimate_mfu(self, tokens_per_iter, dt, peak_flops):
        """Model FLOPs utilisation: achieved FLOP/s over the device's peak (which bench.py measures)."""
        return self.flops_per_token() * tokens_per_iter / dt / peak_flops

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                 generator=None):
        """Sample max_new_tokens tokens after idx (B, T). Call in eval mode.

        temperature 0 is greedy. top_k keeps the k most likely tokens; top_p keeps the smallest set
        whose probability reaches p (nucleus sampling). With use_cache each step feeds only the new
        token and reuses past keys/values; it gives the same tokens as use_cache=False.
        """
        cache = None
        for _ in range(max_new_tokens):
            if use_cache and idx.size(1) <= self.config.block_size:
                if cache is None:  # prefill: run the whole prompt once
                    cache = [[None, None] for _ in self.transformer.h]
                    logits, _ = self(idx, cache=cache)
                else:
                    logits, _ = self(idx[:, -1:], cache=cache)
            else:
                # Past the context window the positions shift every step, so nothing can be
                # reused: run the last block_size tokens afresh (what use_cache=False always does).
                logits, _ = self(idx[:, -self.config.block_size:])
            idx_next = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Pick the next token from (B, vocab) logits: greedy, or sampled after top-k / top-p filtering."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k > 0:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        logits = logits.masked_fill(drop_sorted.scatter(1, order, drop_sorted), float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
