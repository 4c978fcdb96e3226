"""
GPT-2 in one file, then the research variants as flags, then what adds to a pretrained model.

1. GPT-2 (read this first: it reads no variant flag)
       HookPoint, KVCache -> CausalSelfAttention -> MLP -> Block -> GPTConfig -> GPT -> sample_next
   Learned positions, pre-LayerNorm blocks, a GELU MLP 4x wide, tied input and output embeddings,
   GPT-2's init and nanoGPT's state-dict keys. Attention has a fused path (SDPA) and a readable manual
   one; generation keeps a KV cache; hook points with TransformerLens-style names read or replace any
   activation (GPT.run_with_cache, GPT.hooks).
2. The variants: every other GPTConfig field, off by default. Each overrides named steps of part 1 in a
   subclass per level (VariantAttention, the MLPs, VariantBlock, VariantGPT); GPT(config) builds those
   classes when a flag is on (model_class). docs/variants.md states each one's question and results,
   and "Add a variant" walks through adding your own.
3. Additions to a pretrained model: LoRA adapters, priming bias layers, Hugging Face import/export
   (GPT.from_pretrained; docs/pretrained.md, docs/priming.md).
"""

import inspect
import math
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import torch
import torch.nn as nn
from torch.nn import functional as F

# =====================================================================================================
# 1. GPT-2
# =====================================================================================================


class HookPoint(nn.Identity):
    """A named place in the forward pass where analysis reads or replaces an activation.

    It returns its input unchanged; GPT.run_with_cache and GPT.hooks attach ordinary torch forward
    hooks to it (TransformerLens's idea, done with torch's own hooks). Unhooked, it costs one call.
    """


# hook points that only the manual attention path passes through (GPT.hooks asks for that path)
MANUAL_ONLY = ("hook_attn_scores", "hook_pattern", "hook_sink", "hook_attn_scale")


class LayerKV:
    """One layer's cached keys and values, (B, nh, tokens, hs) each."""

    def __init__(self):
        self.k = self.v = None

    @property
    def length(self):
        """Tokens held: the position of the next one."""
        return 0 if self.k is None else self.k.size(2)

    def extend(self, k, v):
        """Append the new tokens' keys and values; returns every key and value so far."""
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v


class KVCache:
    """Keys and values of every token fed so far, one LayerKV per layer, so that generation feeds only
    the new token. Whoever makes it owns it (generate makes one per call); forward extends it."""

    def __init__(self, layers):
        self.layers = layers

    @property
    def length(self):
        return self.layers[0].length

    def nbytes(self):
        """Memory its tensors take."""
        return sum(t.numel() * t.element_size() for layer in self.layers for t in vars(layer).values() if torch.is_tensor(t))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: each position mixes the values of the positions before it.

    Two paths compute the same thing: F.scaled_dot_product_attention (fast, fused) and manual_attention,
    which builds the scores, mask and softmax so you can read it and hook the pattern.
    """

    Linear = nn.Linear  # the layer type of its matrices (LoRA swaps in LoRALinear)

    def __init__(self, config, width):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.c_attn = self.Linear(width, 3 * width, bias=config.bias)  # q, k, v for all heads in one matmul
        self.c_proj = self.Linear(width, width, bias=config.bias)  # back into the residual stream
        self.c_proj.RESIDUAL_PROJ = True  # GPT-2 init scales it by 1/sqrt(2 * n_layer)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()  # (B, nh, T, hs)
        self.hook_attn_scores = HookPoint()  # (B, nh, T, keys) q.k / sqrt(hs), -inf where hidden (manual path)
        self.hook_pattern = HookPoint()  # (B, nh, T, keys) attention weights (manual path)
        self.hook_z = HookPoint()  # (B, nh, T, hs) each head's output, before c_proj mixes the heads

    def forward(self, x, cache=None, manual=False):
        """x: (B, T, C) -> (B, T, C). cache: this layer's LayerKV when generating. manual: the readable path."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        past = 0
        if cache is not None:  # generation: the new queries also see every cached key
            past = cache.length
            k, v = cache.extend(k, v)  # (B, nh, past + T, hs)
        # the fused kernel's is_causal masks by itself when nothing is cached; one new query sees everything
        mask = causal_mask(T, past, x.device) if manual or (past and T > 1) else None
        if manual:
            y = self.manual_attention(q, k, v, mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=mask is None and past == 0)
        y = self.hook_z(y).transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))

    def manual_attention(self, q, k, v, mask):
        """The readable path: scores, mask, softmax, weighted sum of the values. q (B, nh, T, hs), k and v
        (B, nh, S, hs) for S keys, mask (1 or B, 1, T, S) True where a query may see a key -> (B, nh, T, hs)."""
        att = self.hook_pattern(F.softmax(self.scores(q, k, mask), dim=-1))  # (B, nh, T, S), rows sum to 1
        return self.attn_dropout(att) @ v

    def scores(self, q, k, mask):
        """q.k / sqrt(hs), and -inf where a key is hidden, in one batched matmul-add (baddbmm): (B, nh, T, S)."""
        B, nh, T, hs = q.shape
        S = k.size(2)
        hidden = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        hidden = hidden.view(1, T, S) if hidden.size(0) == 1 else hidden.expand(B, nh, T, S).reshape(B * nh, T, S)
        scores = torch.baddbmm(hidden, q.reshape(B * nh, T, hs), k.reshape(B * nh, S, hs).transpose(1, 2),
                               alpha=1.0 / math.sqrt(hs)).view(B, nh, T, S)
        return self.hook_attn_scores(scores)


def causal_mask(T, past, device):
    """(1, 1, T, past + T) bool, True where a query (positions past..past+T-1) may see a key: at or before it."""
    i = torch.arange(past, past + T, device=device)[:, None]
    j = torch.arange(past + T, device=device)[None, :]
    return (j <= i).view(1, 1, T, past + T)


class MLP(nn.Module):
    """Position-wise feed-forward: width -> 4 * width -> GELU (exact, as nanoGPT) -> width."""

    Linear = nn.Linear  # (LoRA swaps in LoRALinear)

    def __init__(self, config, width):
        super().__init__()
        self.c_fc = self.Linear(width, 4 * width, bias=config.bias)
        self.act = nn.GELU()
        self.c_proj = self.Linear(4 * width, width, bias=config.bias)
        self.c_proj.RESIDUAL_PROJ = True
        self.dropout = nn.Dropout(config.dropout)
        self.hook_post = HookPoint()  # (B, T, 4 * width) the neurons, after the nonlinearity

    def forward(self, x):
        return self.dropout(self.c_proj(self.hook_post(self.act(self.c_fc(x)))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    Attention, MLP = CausalSelfAttention, MLP  # its sublayers' classes (a variant model swaps in its own)

    def __init__(self, config, width):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=config.bias)
        self.attn = self.Attention(config, width)
        self.ln_2 = nn.LayerNorm(width, bias=config.bias)
        self.mlp = self.MLP(config, width)
        # the residual stream and what each sublayer writes into it, (B, T, width) each
        self.hook_resid_pre, self.hook_attn_out, self.hook_resid_mid = HookPoint(), HookPoint(), HookPoint()
        self.hook_mlp_out, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x, cache=None, manual=False):
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln_1(x), cache, manual)))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln_2(x))))


@dataclass
class GPTConfig:
    """Everything that defines the network. Defaults are GPT-2 124M; every variant defaults to off.

    docs/variants.md lists each variant with its question, mechanism and results.
    """

    block_size: int = 1024  # maximum context length (learned position embeddings)
    vocab_size: int = 50304  # tokens in the vocabulary (train.py reads it from the data); 50304 = GPT-2 padded to 64s
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads per block
    n_embd: int = 768  # width of the residual stream
    dropout: float = 0.0  # dropout on attention weights and residual branches
    bias: bool = True  # biases in Linear and LayerNorm layers, like GPT-2
    attn_impl: str = "sdpa"  # "sdpa": fused kernel; "manual": explicit scores/mask/softmax (analysis reads this)
    # --- research variants (docs/variants.md); the defaults are GPT-2 ---
    zero_value_attn: bool = False  # every head gets an extra learned key whose value is zero: a way to attend to nothing
    tie_dims: int = -1  # -1: wte and lm_head tied; 0: untied; k: only their first k dims shared
    cross_layer_kv: bool = False  # layer l >= 1 also attends over the keys/values of layer l-1
    shared_qk: bool = False  # queries and keys from one projection (one vector space); a token skips itself
    residual_dims: int = -1  # -1: full residual; k: only the first k dims carry the residual, the rest are replaced
    residual_root: str = "token"  # what the stream starts from: "token" (+position), "position", "learned" (+position)
    layer_widths: tuple[int, ...] | None = None  # per-layer width (overrides n_embd), linear maps between widths
    layer_windows: tuple[int, ...] | None = None  # per-layer attention window in tokens, 0 = full context
    n_shared_blocks: int = 0  # 0: every layer its own weights; k: k distinct blocks reused over n_layer layers
    share_pattern: str = "cycle"  # how shared blocks repeat: "cycle" (ABAB) or "repeat" (AABB)
    attn_sum_power: float = 1.0  # p in exp(s) / (sum exp(s))^p; 1 is softmax (p != 1 takes the manual path)
    attn_sum_power_learned: bool = False  # learn p per head in [0, 1], starting at attn_sum_power
    prefix_lm: bool = False  # bidirectional attention inside each sequence's prefix, causal after; loss after it
    attn_only: bool = False  # no MLPs: blocks are attention only (attention-only transformers, for circuits)
    attn_gate: bool = False  # each head's output times a sigmoid gate computed from the token (gated attention)
    # --- modern pieces (modded-nanogpt, LLaMA); the defaults are GPT-2 ---
    n_kv_head: int = 0  # key/value heads: 0 = n_head (GPT-2); 1 = multi-query; in between = grouped-query
    rotary: bool = False  # rotary position embeddings on q and k instead of learned positions (no wpe)
    qk_norm: bool = False  # RMS-normalise each head's queries and keys (learned gain) before the dot product
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (torch.nn.RMSNorm) in blocks and before the head
    mlp_act: str = "gelu"  # "gelu" (4x; "gelu_tanh": GPT-2's approximation), "relu2" (ReLU squared, 4x), "swiglu" (8/3x)
    logit_softcap: float = 0.0  # 0: off; c: logits = c * tanh(logits / c)
    zero_init_proj: bool = False  # residual projections (attn and MLP c_proj) start at zero: blocks start as identity
    compress_past: int = 0  # 0: off; W: keys/values older than the W most recent positions are averaged in pairs
    kv_shift: bool = False  # each head's keys and values mix in the previous token's (learned weights per head)
    # --- additions to a pretrained model: priming bias layers (docs/priming.md), LoRA (docs/pretrained.md) ---
    priming: bool = False  # bias layers after the blocks, primed by a document (model.prime); skipped when not primed
    priming_dim: int = 64  # units in each bias layer
    priming_pool: str = "mean"  # how a bias layer's activations over the document become its bias: mean, last, attention
    priming_shared: bool = False  # every bias layer uses the same projections (each is still primed separately)
    priming_layers: tuple[int, ...] | None = None  # after which layers' blocks the bias layers sit; None = all
    priming_slots: int = 1  # primed biases per bias layer (attention pooling, a query each); each token mixes them
    lora_rank: int = 0  # 0: off; r: a rank-r LoRA adapter on every attention and MLP matrix (the base is frozen)
    lora_alpha: float = 16.0  # LoRA's adapters are scaled by lora_alpha / lora_rank

    def __post_init__(self):
        for name in ("layer_widths", "layer_windows", "priming_layers"):  # lists from JSON or the command line
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))
        check_model_config(self)

    def widths(self):
        """The width of every layer."""
        return self.layer_widths or (self.n_embd,) * self.n_layer

    def primed_layers(self):
        """The layers followed by a bias layer, in order (empty without priming)."""
        if not self.priming:
            return ()
        return self.priming_layers if self.priming_layers is not None else tuple(range(self.n_layer))

    def block_of_layer(self, layer):
        """Which distinct block a layer runs (n_shared_blocks; the identity when 0)."""
        k = self.n_shared_blocks
        if not k:
            return layer
        return layer % k if self.share_pattern == "cycle" else layer * k // self.n_layer


class GPT(nn.Module):
    """The language model: token and position embeddings, n_layer blocks, a final LayerNorm, the head."""

    Block = Block  # (a variant model swaps in its own)

    def __new__(cls, config=None):
        # GPT(config) with a variant flag on builds the variant layer's classes (model_class, part 2)
        return super().__new__(model_class(config) if cls is GPT and config is not None else cls)

    def __init__(self, config):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, C),  # token embeddings
            wpe=nn.Embedding(config.block_size, C),  # learned position embeddings
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([self.Block(config, C) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(C, bias=config.bias),
        ))
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied: one matrix, one set of gradients
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()  # (B, T, C) tokens, (T, C) positions
        self.apply(self._init_weights)

    def _init_weights(self, module):
        """GPT-2 init: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2 * n_layer) so the
        residual stream's variance does not grow with depth."""
        if isinstance(module, nn.Linear):
            std = 0.02 / math.sqrt(2 * self.config.n_layer) if getattr(module, "RESIDUAL_PROJ", False) else 0.02
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, reduction="mean", *, cache=None, last_only=False, attn_impl=None, **inputs):
        """idx: (B, T) token ids. Returns (logits (B, T, vocab), loss or None).

        targets: (B, T) next-token ids, -1 where no loss is wanted; reduction="none" returns the loss of
        every token, (B, T): the loss at every position. cache: a KVCache (new_cache); positions continue
        after what it holds. last_only: logits for the last position only, all that sampling needs.
        attn_impl: "sdpa" or "manual" for this call (default: the config's). inputs: what only a variant
        reads (prefix_len for prefix_lm, priming for bias layers); GPT-2 refuses them.
        """
        B, T = idx.size()
        past = 0 if cache is None else cache.length  # tokens already in the cache
        if past + T > self.config.block_size or (last_only and targets is not None) or any(v is not None for v in inputs.values()):
            self.refuse(past + T, last_only and targets is not None, inputs)
        manual = (attn_impl or self.config.attn_impl) == "manual"
        pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.hook_embed(self.transformer.wte(idx)) + self.hook_pos_embed(self.transformer.wpe(pos))  # (B, T, C)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else cache.layers[i], manual)
        x = self.transformer.ln_f(x)
        logits = self.head(x[:, -1:] if last_only else x)  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1,
                                   reduction=reduction)
            loss = loss.view(B, T) if reduction == "none" else loss
        return logits, loss

    def head(self, x):
        """Logits from the last residual stream (B, T, C) -> (B, T, vocab)."""
        return self.lm_head(x)

    def refuse(self, length, loss_with_last_only, inputs):
        """One clear error for a forward call this model cannot run."""
        if length > self.config.block_size:
            raise ValueError(f"sequence of {length} tokens is longer than block_size {self.config.block_size}")
        if loss_with_last_only:
            raise ValueError("last_only computes no loss: pass targets=None")
        given = ", ".join(k for k, v in inputs.items() if v is not None)
        raise ValueError(f"{given} given to a model built without the variant that reads it "
                         f"(prefix_len: build it with prefix_lm=True; priming: with priming=True)")

    def get_num_params(self, non_embedding=True):
        """Parameter count; the position embeddings are left out by default, as in nanoGPT (the token
        embeddings are the head's weights when tied, so they stay in)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def crop_block_size(self, block_size):
        """Shrink the context (e.g. load a 1024-token checkpoint, train at 256)."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        if "wpe" in self.transformer:  # rotary models have no position table
            self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type, params=None):
        """AdamW; weight decay on matrices and embeddings (>= 2-D), none on biases and gains.
        params: the parameters it trains (default: every trainable one; Muon + AdamW passes the rest)."""
        params = [p for p in (self.parameters() if params is None else params) if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        # fused: one kernel for all tensors instead of a dozen small ops per tensor (CUDA, and CPU too)
        fused = device_type in ("cuda", "cpu") and "fused" in inspect.signature(torch.optim.AdamW).parameters
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **({"fused": True} if fused else {}))

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls (PaLM appendix B) plus attention scores (those
        counted at n_embd: an estimate for layer_widths models)."""
        N = self.get_num_params()
        cfg = self.config
        L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
        return 6 * N + 12 * L * H * Q * T

    def estimate_mfu(self, tokens_per_iter, dt, peak_flops):
        """Model FLOPs utilisation: achieved FLOP/s over the device's peak (which tools/bench.py measures)."""
        return self.flops_per_token() * tokens_per_iter / dt / peak_flops

    # --- generation ---

    def new_cache(self):
        """An empty KV cache for this model."""
        return KVCache([LayerKV() for _ in range(self.config.n_layer)])

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                 generator=None, **inputs):
        """Sample max_new_tokens tokens after idx (B, T). Call in eval mode.

        temperature 0 is greedy. top_k keeps the k most likely tokens; top_p keeps the smallest set
        whose probability reaches p (nucleus sampling). With use_cache each step feeds only the new
        token and reuses past keys/values; it gives the same tokens as use_cache=False.
        inputs: what a variant reads (prefix_len, priming: see VariantGPT.generate).
        """
        cache = self.new_cache() if use_cache else None
        for _ in range(max_new_tokens):
            cropped = max(0, idx.size(1) - self.config.block_size)
            if cropped:  # past the context window the positions shift every step: nothing can be reused
                cache = None
            fed = idx[:, cropped:] if cache is None or cache.length == 0 else idx[:, -1:]
            logits, _ = self(fed, cache=cache, last_only=True, **self.step_inputs(inputs, idx, cropped))
            idx = torch.cat((idx, sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)), dim=1)
        return idx

    def step_inputs(self, inputs, idx, cropped):
        """The variant inputs for one generation step (GPT-2 has none; VariantGPT shifts prefix_len)."""
        return inputs

    def prime(self, doc_idx, doc_len=None):
        """Priming needs bias layers: VariantGPT.prime (part 3)."""
        raise ValueError("this model has no bias layers: build it with priming=True")

    # --- looking inside: hook points (see HookPoint) ---

    def hook_names(self):
        """Names of every hook point, e.g. "transformer.h.0.hook_resid_pre", "transformer.h.1.attn.hook_z"."""
        return [n for n, m in self.named_modules() if isinstance(m, HookPoint)]

    @contextmanager
    def hooks(self, fns):
        """Attach {hook name: fn(activation)} for the duration of a `with` block. A fn that returns a
        tensor replaces the activation (activation patching); one that returns None only reads it.
        Scores and patterns exist only on the manual path (MANUAL_ONLY): hooking one passes
        attn_impl="manual" to every forward call inside the block (the config is left as it is)."""
        points, handles = dict(self.named_modules()), []
        try:
            for name, fn in fns.items():
                if not isinstance(points.get(name), HookPoint):
                    raise KeyError(f"no hook point named {name!r}; model.hook_names() lists them")
                handles.append(points[name].register_forward_hook(lambda mod, inp, out, fn=fn: fn(out)))
            if any(n.endswith(MANUAL_ONLY) for n in fns):
                handles.append(self.register_forward_pre_hook(
                    lambda mod, args, kwargs: (args, {**kwargs, "attn_impl": "manual"}), with_kwargs=True))
            yield self
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def run_with_cache(self, idx, names=None, **kwargs):
        """Forward pass returning (logits, {hook name: activation}) for `names` (default: all).
        Extra keyword arguments (prefix_len) go to forward."""
        names = list(names or self.hook_names())
        cache = {}
        with self.hooks({n: (lambda act, n=n: cache.__setitem__(n, act.detach())) for n in names}):
            logits, _ = self(idx, **kwargs)
        return logits, cache

    # --- pretrained weights: OpenAI's GPT-2 through Hugging Face transformers (part 3, docs/pretrained.md) ---

    @classmethod
    def from_pretrained(cls, name_or_path, **overrides):
        """GPT-2 with OpenAI's weights: "gpt2", "gpt2-medium", "gpt2-large" or "gpt2-xl" from the Hugging
        Face hub, or a local directory in HF's GPT-2 format (config.json + safetensors or bin weights).
        overrides: GPTConfig keys that add to the weights without changing them (dropout, lora_*, priming*).
        """
        from transformers import GPT2LMHeadModel  # imported here: nothing else in model.py needs it

        hf = GPT2LMHeadModel.from_pretrained(name_or_path, dtype=torch.float32)
        model = cls(GPTConfig(**{**config_from_hf(hf.config), **overrides}))
        missing, unexpected = model.load_state_dict(swap_conv1d(hf.state_dict()), strict=False)
        if unexpected or any(not k.endswith(NEW_PARAMS) and not k.startswith("bias_layers.") for k in missing):
            raise ValueError(f"{name_or_path} does not fit GPT-2's layout (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model


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


# =====================================================================================================
# 2. The variants
#
# Each GPTConfig flag below GPT-2's own keys changes one or more named steps of the GPT-2 classes, in a
# subclass per level: VariantAttention (project, position, keys, mask, extra_keys, gate, manual_attention),
# the MLPs (the activation), VariantBlock (residual, attn_only) and VariantGPT (embed, the layer loop,
# head). What a later layer needs from an earlier one is returned up to the loop, which passes it on
# (cross_layer_kv's borrowed keys). model_class picks the classes a config needs, so a model with every
# flag off is part 1 alone. A comment at each step names the variant, its docs section and the mechanism.
# =====================================================================================================

# the flags whose non-default value needs the variant classes (mlp_act and the part-3 additions do not)
STRUCTURE_FLAGS = ("zero_value_attn", "tie_dims", "cross_layer_kv", "shared_qk", "residual_dims", "residual_root",
                   "layer_widths", "layer_windows", "n_shared_blocks", "attn_sum_power", "attn_sum_power_learned",
                   "prefix_lm", "attn_only", "attn_gate", "n_kv_head", "rotary", "qk_norm", "norm", "logit_softcap",
                   "zero_init_proj", "compress_past", "kv_shift", "priming")
DEFAULTS = {f.name: f.default for f in fields(GPTConfig)}


def model_class(config):
    """The GPT class that config asks for: GPT itself with every flag off, else GPT-2's classes with the
    variant layer's subclasses swapped in where a flag is on."""
    return compose(any(getattr(config, k) != DEFAULTS[k] for k in STRUCTURE_FLAGS), config.mlp_act,
                   (config.lora_rank, config.lora_alpha) if config.lora_rank else None)


@lru_cache(maxsize=None)
def compose(structural, mlp_act, lora):
    """Build (once per combination) the model class: attention and MLP classes into a block class,
    the block class into a GPT class. Each is a plain subclass, named for what it adds."""
    attention, block, gpt = (VariantAttention, VariantBlock, VariantGPT) if structural else (CausalSelfAttention, Block, GPT)
    mlp = MLPS[mlp_act]
    if lora:  # every attention and MLP matrix gets an adapter (part 3)
        attention, mlp, gpt = with_lora(attention, *lora), with_lora(mlp, *lora), type("LoRA" + gpt.__name__, (LoRAModel, gpt), {})
    if (attention, mlp) != (block.Attention, block.MLP):
        block = type(block.__name__, (block,), {"Attention": attention, "MLP": mlp})
    if block is not gpt.Block:
        gpt = type(gpt.__name__, (gpt,), {"Block": block})
    return gpt


def check_model_config(c):
    """Reject impossible configurations here, with one line that says what to change."""
    for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(c, name)}")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {c.dropout}")
    choices = {"attn_impl": ("sdpa", "manual"), "residual_root": ("token", "position", "learned"),
               "share_pattern": ("cycle", "repeat"), "norm": ("layernorm", "rmsnorm"),
               "mlp_act": tuple(MLPS), "priming_pool": ("mean", "last", "attention")}
    for name, allowed in choices.items():
        if getattr(c, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(c, name)!r}")
    for name in ("layer_widths", "layer_windows"):
        if getattr(c, name) is not None and len(getattr(c, name)) != c.n_layer:
            raise ValueError(f"{name} needs one value per layer ({c.n_layer}), got {len(getattr(c, name))}")
    widths = c.widths()
    for w in widths:
        if w < 1 or w % c.n_head:
            raise ValueError(f"every layer width (n_embd, or layer_widths) must be divisible by n_head ({c.n_head}); got {w}")
    if c.n_kv_head < 0 or c.n_kv_head > c.n_head or c.n_kv_head and c.n_head % c.n_kv_head:
        raise ValueError(f"n_kv_head must divide n_head ({c.n_head}), or be 0 (= n_head); got {c.n_kv_head}")
    if c.compress_past < 0:
        raise ValueError(f"compress_past must be >= 0 (0 = off; W = the recent positions kept whole), got {c.compress_past}")
    clash = [k for k in ("layer_windows", "prefix_lm", "cross_layer_kv", "shared_qk", "kv_shift") if getattr(c, k)]
    if c.compress_past and clash:
        raise ValueError(f"compress_past builds its own mask and keys: it does not combine with {', '.join(clash)}")
    if c.kv_shift and c.shared_qk:
        raise ValueError("shared_qk's keys are its queries, which kv_shift does not shift: drop one of them")
    if c.shared_qk and c.n_kv_head not in (0, c.n_head):
        raise ValueError("shared_qk's keys are its queries, one per query head: it needs n_kv_head = n_head (or 0)")
    if c.layer_windows is not None and min(c.layer_windows) < 0:
        raise ValueError(f"layer_windows must be >= 0 (0 = full context), got {c.layer_windows}")
    if c.shared_qk and c.layer_windows is not None and 1 in c.layer_windows:
        raise ValueError("a window of 1 leaves shared_qk's queries (which skip their own key) nothing to see")
    head_in, head_out = widths[0], widths[-1]
    if c.tie_dims == -1 and head_in != head_out:
        raise ValueError(f"tie_dims=-1 ties wte and lm_head, which needs the first and last widths equal "
                         f"({head_in} != {head_out}); set tie_dims=0 or a k <= {min(head_in, head_out)}")
    if not -1 <= c.tie_dims <= min(head_in, head_out):
        raise ValueError(f"tie_dims must be -1, 0 or a k <= {min(head_in, head_out)}, got {c.tie_dims}")
    if not -1 <= c.residual_dims <= min(widths):
        raise ValueError(f"residual_dims must be -1 or 0..{min(widths)} (the narrowest layer), got {c.residual_dims}")
    if not 0 <= c.n_shared_blocks <= c.n_layer:
        raise ValueError(f"n_shared_blocks must be 0..n_layer ({c.n_layer}), got {c.n_shared_blocks}")
    for layer in range(c.n_layer):
        first = next(i for i in range(c.n_layer) if c.block_of_layer(i) == c.block_of_layer(layer))
        if widths[layer] != widths[first]:
            raise ValueError(f"layers {first} and {layer} share a block but have widths {widths[first]} and "
                             f"{widths[layer]}: make shared layers equally wide")
    if c.cross_layer_kv and len(set(widths)) > 1:
        raise ValueError("cross_layer_kv needs every layer equally wide (keys are borrowed as they are)")
    if c.attn_sum_power < 0 or (c.attn_sum_power_learned and c.attn_sum_power > 1):
        raise ValueError(f"attn_sum_power must be >= 0 (and <= 1 when learned), got {c.attn_sum_power}")
    if c.rotary and any((w // c.n_head) % 2 for w in widths):
        raise ValueError(f"rotary rotates pairs of dims, so the head size (width / n_head) must be even; got "
                         f"widths {sorted(set(widths))} with n_head {c.n_head}")
    if c.rotary and c.residual_root == "position":
        raise ValueError("residual_root='position' starts the stream from the learned positions, which rotary "
                         "removes: use residual_root='learned' (or 'token')")
    if c.attn_only and c.mlp_act != "gelu":
        raise ValueError(f"mlp_act={c.mlp_act!r} chooses the MLP's activation, which attn_only removes: drop one of them")
    if c.logit_softcap < 0:
        raise ValueError(f"logit_softcap must be >= 0 (0 = off), got {c.logit_softcap}")
    if c.attn_gate and c.lora_rank:
        raise ValueError("attn_gate adds gates that lora_rank would freeze at their random init (half-closed): "
                         "train attn_gate without lora_rank")
    if c.lora_rank < 0 or c.lora_alpha <= 0:
        raise ValueError(f"lora_rank must be >= 0 (0 = off) and lora_alpha > 0, got {c.lora_rank} and {c.lora_alpha}")
    if c.priming:
        layers = c.primed_layers()
        if c.priming_dim < 1:
            raise ValueError(f"priming_dim must be >= 1, got {c.priming_dim}")
        if not layers or len(set(layers)) != len(layers) or not all(0 <= i < c.n_layer for i in layers):
            raise ValueError(f"priming_layers must be distinct layers in 0..{c.n_layer - 1}, got {c.priming_layers}")
        if c.priming_shared and len({widths[i] for i in layers}) > 1:
            raise ValueError("priming_shared needs the primed layers equally wide (one c_in/c_out for all)")
        if c.prefix_lm:
            raise ValueError("priming reads documents causally; it does not combine with prefix_lm")
        if c.lora_rank:
            raise ValueError("lora_rank and priming both add what fine-tuning trains: choose one")
        if c.priming_slots < 1 or (c.priming_slots > 1 and c.priming_pool != "attention"):
            raise ValueError(f"priming_slots must be >= 1, and > 1 only with priming_pool='attention' (a learned "
                             f"query per slot); got {c.priming_slots} with {c.priming_pool!r}")


# --- attention ---------------------------------------------------------------------------------------


class VariantAttention(CausalSelfAttention):
    """GPT-2's attention cut into named steps that the variants change:

        project -> split heads -> shift -> position -> hooks -> keys (cache) -> mask -> extra_keys -> attend -> gate -> c_proj

    forward also returns this layer's keys and values, which cross_layer_kv lends to the next layer.
    """

    def __init__(self, config, width):
        nn.Module.__init__(self)
        self.n_head, self.dropout, self.config = config.n_head, config.dropout, config
        hs = width // config.n_head  # head size
        # n_kv_head (docs/variants.md#n_kv_head; multi-query / grouped-query attention, PaLM, Llama 2): fewer
        # key/value heads than query heads, each serving n_head / n_kv_head of them; the KV cache shrinks as much
        self.n_kv_head = config.n_kv_head or config.n_head
        kv = self.n_kv_head * hs
        self.qkv_sizes = [width, width] if config.shared_qk else [width, kv, kv]  # shared_qk: no key projection
        self.c_attn = self.Linear(width, sum(self.qkv_sizes), bias=config.bias)
        self.c_proj = self.Linear(width, width, bias=config.bias)
        self.c_proj.RESIDUAL_PROJ = True
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        if config.zero_value_attn:
            # zero_value_attn (docs/variants.md#zero_value_attn): one more key per head, learned, whose value
            # is zero; attention that goes there reads nothing (softmax-plus-one)
            self.sink_key = nn.Parameter(torch.zeros(config.n_head, hs))
        self.power = None
        if config.attn_sum_power_learned:  # attn_sum_power's p, learned per head
            self.power = nn.Parameter(torch.full((config.n_head,), float(config.attn_sum_power)))
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()  # (B, nh or n_kv_head, T, hs)
        self.hook_attn_scores = HookPoint()  # (B, nh, T, keys) q.k / sqrt(hs), -inf where hidden (manual path)
        self.hook_pattern = HookPoint()  # (B, nh, T, keys) attention weights, manual path
        self.hook_sink = HookPoint()  # (B, nh, T) weight on the zero-value key (zero_value_attn, manual path)
        self.hook_z = HookPoint()  # (B, nh, T, hs) each head's output, before c_proj mixes the heads
        self.hook_attn_scale = HookPoint()  # (B, nh, T, 1) attn_sum_power: how much each query reads
        if config.qk_norm:
            # qk_norm (docs/variants.md#qk_norm; modded-nanogpt, OLMo 2): RMS-normalise each head's queries and
            # keys, so scores cannot blow up as weights grow. With shared_qk keys are queries: one norm for both.
            self.q_norm = nn.RMSNorm(hs)
            self.k_norm = self.q_norm if config.shared_qk else nn.RMSNorm(hs)
        if config.rotary:  # rotation tables, computed once (not saved: they follow from the config)
            cos, sin = rotary_tables(config.block_size, hs)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        if config.attn_gate:  # one gate per head, read from the token's own input
            self.c_gate = nn.Linear(width, config.n_head, bias=config.bias)
            self.hook_gate = HookPoint()  # (B, T, nh) how open each head's gate is
        if config.kv_shift:  # (a, b) per key/value head for keys, then for values; 1-D: no weight decay
            self.kv_mix = nn.Parameter(torch.tensor([1.0, 0.0]).repeat(2 * self.n_kv_head))  # starts as GPT-2: a=1, b=0

    def forward(self, x, cache=None, manual=False, window=0, prefix_len=None, kv_input=None, borrowed=None):
        """x: (B, T, C) -> ((B, T, C), this layer's (k, v)). window, prefix_len: who may see whom (mask);
        kv_input: what keys and values read instead of x (residual_root); borrowed: the previous layer's
        (k, v) (cross_layer_kv)."""
        B, T, C = x.size()
        past = 0 if cache is None else cache.length
        q, k, v = self.project(x, kv_input)
        # split the heads: (B, T, C) -> (B, nh, T, hs) each (keys and values: n_kv_head heads)
        q, k, v = (t.view(B, T, -1, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        k, v = self.shift(k, v, cache)
        q, k = self.position(q, k, past)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        k, v, mask = self.keys(k, v, past, cache)
        kv = (k, v)  # what cross_layer_kv lends to the next layer
        power = self.power is not None or self.config.attn_sum_power != 1.0  # needs the scores: the manual path
        manual = manual or power
        extra = borrowed is not None or self.config.zero_value_attn  # keys beyond this layer's own
        if mask is None:
            mask = self.mask(T, past, x.device, window, prefix_len, kv_input is None, force=manual or extra)
        if extra:
            k, v, mask = self.extra_keys(k, v, mask, borrowed)
        if manual:
            y = self.manual_attention(q, k, v, mask)
        else:  # the fused kernel; is_causal only when the queries start at position 0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=mask is None and past == 0)
        y = self.gate(x, y)
        y = self.hook_z(y).transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y)), kv

    def project(self, x, kv_input=None):
        """q (B, T, C), k and v (B, T, n_kv_head * hs): GPT-2's one matmul, split."""
        sizes, shared = self.qkv_sizes, self.config.shared_qk
        if kv_input is None and not shared:
            return self.c_attn(x).split(sizes, dim=2)
        if kv_input is None:  # shared_qk (docs/variants.md#shared_qk): the keys are the queries
            q, v = self.c_attn(x).split(sizes, dim=2)
            return q, q, v
        # residual_root (docs/variants.md#residual_root): queries read x, keys and values read kv_input,
        # through the same rows of c_attn
        w, b, start = self.c_attn.weight, self.c_attn.bias, [0, sizes[0], sizes[0] + sizes[1]]

        def rows(i):  # the i-th block of c_attn's rows: [q | k | v]
            lo, hi = start[i], start[i] + sizes[i]
            return w[lo:hi], None if b is None else b[lo:hi]
        q = F.linear(x, *rows(0))
        return q, F.linear(kv_input, *rows(0 if shared else 1)), F.linear(kv_input, *rows(1 if shared else 2))

    def shift(self, k, v, cache):
        """kv_shift (docs/variants.md#kv_shift; KV shifting attention, Xu et al. 2411.19574): k'_t = a k_t + b k_{t-1},
        the same for v, learned per head. A key then carries the token before it, so one layer matches "the token
        after X" (induction, associative recall) without waiting for a previous-token head to form. k, v (B, h, T, hs)."""
        if not self.config.kv_shift:
            return k, v
        prev_k, prev_v = torch.zeros_like(k[:, :, :1]), torch.zeros_like(v[:, :, :1])  # nothing before position 0
        if cache is not None:  # generation: the token before the new ones is the cache's last, before mixing
            if cache.last_k is not None:
                prev_k, prev_v = cache.last_k, cache.last_v
            cache.last_k, cache.last_v = k[:, :, -1:], v[:, :, -1:]
        (ak, bk), (av, bv) = (m.unbind(-1) for m in self.kv_mix.view(2, 1, -1, 1, 1, 2))  # each (1, h, 1, 1)
        return (ak * k + bk * torch.cat([prev_k, k[:, :, :-1]], dim=2),
                av * v + bv * torch.cat([prev_v, v[:, :, :-1]], dim=2))

    def position(self, q, k, past):
        """qk_norm, then rotary: positions past..past+T-1; keys are rotated before they are cached or lent."""
        if self.config.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.config.rotary:
            T = q.size(2)
            cos, sin = self.rotary_cos[past:past + T], self.rotary_sin[past:past + T]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k

    def keys(self, k, v, past, cache):
        """Every key and value the new queries read (the cache's too), repeated for grouped query heads,
        and the mask when the keys need their own (compress_past), else None."""
        mask = None
        if self.config.compress_past:  # its own keys [pairs | recent], mask and cache
            k, v, mask = self.compress_past(k, v, past, cache)
        elif cache is not None:
            k, v = cache.extend(k, v)  # (B, n_kv_head, past + T, hs)
        if self.n_kv_head != self.n_head:  # every key/value head serves a group of query heads
            k, v = (t.repeat_interleave(self.n_head // self.n_kv_head, dim=1) for t in (k, v))
        return k, v, mask

    def mask(self, T, past, device, window, prefix_len, own_keys, force):
        """Who may see whom (attention_mask); shared_qk hides a query's own key when keys are its queries."""
        no_self = self.config.shared_qk and own_keys  # q.k with itself would always win
        return attention_mask(T, past, device, window, prefix_len, no_self, force=force)

    def extra_keys(self, k, v, mask, borrowed):
        """This layer's keys and values with the extra ones in front, and the mask widened to match:
        [zero-value key | previous layer's keys | own keys]."""
        if borrowed is not None:
            # cross_layer_kv (docs/variants.md#cross_layer_kv): the previous layer's keys at the same
            # positions, under the same mask
            k, v = torch.cat([borrowed[0], k], dim=2), torch.cat([borrowed[1], v], dim=2)
            mask = torch.cat([mask, mask], dim=-1)
        if self.config.zero_value_attn:  # key 0: the learned key with a zero value, always visible
            B, nh, _, hs = k.shape
            k = torch.cat([self.sink_key.view(1, nh, 1, hs).expand(B, -1, -1, -1).to(k.dtype), k], dim=2)
            v = torch.cat([torch.zeros_like(v[:, :, :1]), v], dim=2)
            mask = torch.cat([torch.ones_like(mask[..., :1]), mask], dim=-1)
        return k, v, mask

    def gate(self, x, y):
        """attn_gate (docs/variants.md#attn_gate; Qiu et al. 2505.06708): y (B, nh, T, hs) times
        sigmoid(c_gate(x)), one number in (0, 1) per head and token, so a head can close for a token."""
        if not self.config.attn_gate:
            return y
        g = self.hook_gate(torch.sigmoid(self.c_gate(x)))  # (B, T, nh)
        return y * g.transpose(1, 2)[..., None]

    def manual_attention(self, q, k, v, mask):
        """GPT-2's readable path, plus the sink's weight (zero_value_attn) and attn_sum_power's factor."""
        scores = self.scores(q, k, mask)
        soft = F.softmax(scores, dim=-1)
        att = self.hook_pattern(soft)  # (B, nh, T, S), each row sums to 1
        if self.config.zero_value_attn:
            self.hook_sink(att[..., 0])
        y = self.attn_dropout(att) @ v  # (B, nh, T, hs)
        if self.power is not None or self.config.attn_sum_power != 1.0:
            # attn_sum_power (docs/variants.md#attn_sum_power-attn_sum_power_learned): weights
            # exp(s) / (sum exp(s))^p, i.e. softmax times (sum exp(s))^(1-p), one factor per query
            y = y * self.hook_attn_scale(self.sum_power_factor(scores, soft))
        return y

    def sum_power_factor(self, scores, soft):
        """(sum_j exp(s_j))^(1 - p) per query, (B, nh, T, 1). Its log-sum-exp is read off the softmax at
        the top score (s - log softmax(s) is the same at every visible key, and softmax >= 1/keys there)."""
        p = self.config.attn_sum_power
        if self.power is not None:  # clamped to [0, 1], the gradient passed straight through so p can return
            p = (self.power + (self.power.clamp(0.0, 1.0) - self.power).detach()).view(1, -1, 1, 1)
        top = scores.detach().argmax(dim=-1, keepdim=True)
        lse = scores.gather(-1, top) - torch.log(soft.gather(-1, top))  # (B, nh, T, 1)
        return torch.exp((1 - p) * lse)

    def compress_past(self, k, v, past, cache):
        """compress_past (docs/variants.md#compress_past): keys and values older than the W most recent
        positions are averaged in pairs (2j, 2j+1), and a pair is read only once both its tokens are that
        old (causal). -> keys, values [pairs | full], mask (1, 1, T, S); the cache keeps the old past paired."""
        W, (B, h, T, hs) = self.config.compress_past, k.shape
        start, kp, vp = 0, k[:, :, :0], v[:, :, :0]  # the first full position; the cached pairs
        if cache is not None and cache.k is not None:
            k, v = torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2)
            kp, vp, start = cache.kp, cache.vp, cache.start
        n = k.size(2) // 2  # pairs that the full keys (positions start .. past+T-1, start even) can form
        kp = torch.cat([kp, k[:, :, :2 * n].reshape(B, h, n, 2, hs).mean(3)], dim=2)
        vp = torch.cat([vp, v[:, :, :2 * n].reshape(B, h, n, 2, hs).mean(3)], dim=2)
        q_pos = torch.arange(past, past + T, device=k.device)[:, None]  # (T, 1)
        pair_last = 2 * torch.arange(kp.size(2), device=k.device) + 1  # the later token of each pair
        full_pos = torch.arange(start, start + k.size(2), device=k.device)
        see_pair = pair_last <= q_pos - W  # both tokens older than the recent window
        see_full = (full_pos <= q_pos) & (2 * (full_pos // 2) + 1 > q_pos - W)  # recent: not yet in a read pair
        if cache is not None:  # merge for good what every later query reads merged
            keep = max(start // 2, (past + T - W + 1) // 2)
            cache.store(k[:, :, 2 * keep - start:], v[:, :, 2 * keep - start:], kp[:, :, :keep], vp[:, :, :keep], 2 * keep)
        mask = torch.cat([see_pair, see_full], dim=1)[None, None]
        return torch.cat([kp, k], dim=2), torch.cat([vp, v], dim=2), mask


class ShiftKV(LayerKV):
    """kv_shift's cache for one layer: also the last token's keys and values before the shift mixed them."""

    def __init__(self):
        super().__init__()
        self.last_k = self.last_v = None


class PairedKV(LayerKV):
    """compress_past's cache for one layer: the recent keys and values whole, the older ones as pairs."""

    def __init__(self):
        super().__init__()
        self.kp = self.vp = None
        self.start = 0  # the position of the first whole key (every position before it is in a pair)

    @property
    def length(self):
        return 0 if self.k is None else self.k.size(2) + self.start

    def store(self, k, v, kp, vp, start):
        self.k, self.v, self.kp, self.vp, self.start = k, v, kp, vp, start


def attention_mask(T, past, device, window=0, prefix_len=None, no_self=False, force=False):
    """Boolean (1 or B, 1, T, past + T) mask, True where a query may see a key; None for plain causal
    attention that the fused kernel does by itself (no past) or that needs no mask (one query).

    Query i (absolute position past..past+T-1) sees key j when j <= i (causal), and:
    - prefix_lm (docs/variants.md#prefix_lm, "is the causal mask necessary?"): also when j < prefix_len,
      so the prefix is read bidirectionally; has_loss drops the loss inside it;
    - layer_windows (docs/variants.md#layer_windows, "smaller context in early layers"): only when i - j < window;
    - shared_qk: not when j == i (as in Reformer; position 0 keeps itself, it has nothing else).
    """
    if not force and not window and prefix_len is None and not no_self and (past == 0 or T == 1):
        return None
    m = causal_mask(T, past, device).view(T, past + T)
    i = torch.arange(past, past + T, device=device)[:, None]
    j = torch.arange(past + T, device=device)[None, :]
    if prefix_len is not None:
        m = m[None] | (j[None] < prefix_len.view(-1, 1, 1))  # (B, T, S)
    if window:
        m = m & (i - j < window)
    if no_self:
        m = m & ((j != i) | (i == 0))
    return m.view(-1, 1, T, past + T)


def rotary_tables(block_size, hs, base=10000.0):
    """cos and sin of the rotary angles pos * base^(-2i/hs), (block_size, hs/2) each."""
    freqs = base ** (-torch.arange(0, hs // 2, dtype=torch.float32) / (hs // 2))
    angles = torch.arange(block_size, dtype=torch.float32)[:, None] * freqs
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """rotary (docs/variants.md#rotary; RoFormer, Su et al. 2104.09864): positions enter the scores only,
    as q_i . k_j depending on i - j. x (B, nh, T, hs): dims i and i + hs/2 form a 2-D vector rotated by
    pos * freq_i; cos and sin are the tables' rows for x's positions."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # bf16 under autocast: q and k stay in one dtype
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


# --- the MLP's activation: mlp_act (docs/variants.md#mlp_act) ------------------------------------------


class TanhGELUMLP(MLP):
    """mlp_act="gelu_tanh": the tanh approximation of GELU that OpenAI's GPT-2 was trained with (HF's
    gelu_new); GPT.from_pretrained sets it."""

    def __init__(self, config, width):
        super().__init__(config, width)
        self.act = nn.GELU(approximate="tanh")


class ReLUSquared(nn.Module):
    def forward(self, h):
        return F.relu(h).square()


class ReLU2MLP(MLP):
    """mlp_act="relu2": ReLU squared (So et al. 2109.08668, modded-nanogpt), 4x wide."""

    def __init__(self, config, width):
        super().__init__(config, width)
        self.act = ReLUSquared()


class SwiGLUMLP(MLP):
    """mlp_act="swiglu": gate one projection by the SiLU of another (Shazeer 2002.05202, LLaMA), 8/3 as wide,
    so its three matrices hold about the parameters of the GELU MLP's two."""

    def __init__(self, config, width):
        nn.Module.__init__(self)
        hidden = swiglu_hidden(width)
        self.c_fc = self.Linear(width, 2 * hidden, bias=config.bias)  # [gate | value] in one matmul
        self.c_proj = self.Linear(hidden, width, bias=config.bias)
        self.c_proj.RESIDUAL_PROJ = True
        self.dropout = nn.Dropout(config.dropout)
        self.hook_post = HookPoint()  # (B, T, hidden)

    def forward(self, x):
        gate, value = self.c_fc(x).chunk(2, dim=-1)
        return self.dropout(self.c_proj(self.hook_post(F.silu(gate) * value)))


def swiglu_hidden(width):
    """SwiGLU's hidden size: 8/3 of the width, rounded to a multiple of 8."""
    return max(8, 8 * round(8 * width / 3 / 8))


MLPS = {"gelu": MLP, "gelu_tanh": TanhGELUMLP, "relu2": ReLU2MLP, "swiglu": SwiGLUMLP}


# --- the block -----------------------------------------------------------------------------------------


def make_norm(config, width):
    """LayerNorm (GPT-2), or norm="rmsnorm" (docs/variants.md#norm): no mean subtraction and no bias
    (LLaMA, modded-nanogpt)."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(width)
    return nn.LayerNorm(width, bias=config.bias)


class VariantBlock(Block):
    """GPT-2's block with its norm chosen by the config, per-call attention inputs passed through, and
    two variants of its own: attn_only and residual_dims. Returns (x, this layer's keys and values)."""

    def __init__(self, config, width):
        nn.Module.__init__(self)
        self.ln_1 = make_norm(config, width)
        self.attn = self.Attention(config, width)
        # attn_only (docs/variants.md#attn_only; Elhage et al. 2021's attention-only transformers): no MLP,
        # so every path from token to logit runs through attention heads, where induction heads form
        self.attn_only = config.attn_only
        if not config.attn_only:
            self.ln_2 = make_norm(config, width)
            self.mlp = self.MLP(config, width)
        # residual_dims (docs/variants.md#residual_dims, "only some dims residual"): the first k dims add
        # the sublayer's output to the stream, the others are replaced by it
        mask = (torch.arange(width) < config.residual_dims).float() if config.residual_dims >= 0 else None
        self.register_buffer("residual_mask", mask, persistent=False)
        self.hook_resid_pre, self.hook_attn_out, self.hook_resid_mid = HookPoint(), HookPoint(), HookPoint()
        if not config.attn_only:
            self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x, cache=None, manual=False, **attn_inputs):
        x = self.hook_resid_pre(x)
        a, kv = self.attn(self.ln_1(x), cache, manual, **attn_inputs)
        x = self.hook_resid_mid(self.residual(x, self.hook_attn_out(a)))  # x + attn(ln_1(x))
        if self.attn_only:
            return self.hook_resid_post(x), kv
        m = self.hook_mlp_out(self.mlp(self.ln_2(x)))
        return self.hook_resid_post(self.residual(x, m)), kv  # x + mlp(ln_2(x))

    def residual(self, x, out):
        """x + out, GPT-2's residual connection; residual_dims: x * mask + out."""
        return x + out if self.residual_mask is None else x * self.residual_mask + out


# --- the model -----------------------------------------------------------------------------------------


def has_loss(targets, prefix_len=None, past=0):
    """(B, T) bool: which targets count in the loss. -1 marks none; with prefix_lm neither do targets
    inside the prefix (a token there sees the next one through bidirectional attention)."""
    valid = targets != -1
    if prefix_len is not None:
        pos = torch.arange(past, past + targets.size(1), device=targets.device)
        valid = valid & (pos[None, :] >= prefix_len.view(-1, 1) - 1)
    return valid


class VariantGPT(GPT):
    """GPT-2's model with the variants that act on the whole network: the stream's start (embed), the
    layer loop (shared blocks, widths, windows, borrowed keys, priming) and the head."""

    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        widths = config.widths()  # GPT-2: n_embd everywhere
        first_use = {}  # block -> the first layer that runs it, whose width the block has
        for layer in reversed(range(config.n_layer)):
            first_use[config.block_of_layer(layer)] = layer
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, widths[0]),  # token embeddings
            **({} if config.rotary else {"wpe": nn.Embedding(config.block_size, widths[0])}),  # rotary: no table
            drop=nn.Dropout(config.dropout),
            # n_shared_blocks (docs/variants.md#n_shared_blocks-share_pattern, "weight sharing, recursion"): fewer
            # distinct blocks than layers, reused ABAB ("cycle") or AABB ("repeat"); their hooks fire once per use
            h=nn.ModuleList([self.Block(config, widths[first_use[b]])
                             for b in range(config.n_shared_blocks or config.n_layer)]),
            ln_f=make_norm(config, widths[-1]),
        ))
        # tie_dims (docs/variants.md#tie_dims, "only half of the embedding weights tied"): -1 ties wte and
        # lm_head (GPT-2); 0 unties them; k shares the first k dims: wte = [A | B], lm_head = [A | C] holds only C
        k = config.tie_dims
        self.lm_head = nn.Linear(widths[-1] - max(k, 0), config.vocab_size, bias=False)
        if k == -1:
            self.transformer.wte.weight = self.lm_head.weight
        if config.residual_root == "learned":
            # residual_root (docs/variants.md#residual_root, "start the stream with a learned value"): the stream
            # starts from positions only (+ this vector); the tokens enter through layer 0's keys and values
            self.root = nn.Parameter(torch.zeros(widths[0]))
        # layer_widths (docs/variants.md#layer_widths, "smaller dimensions in the beginning"): a learned linear
        # map where the width changes, initialised to copy the dims both widths share
        self.resize = nn.ModuleList([
            nn.Linear(widths[i - 1], widths[i], bias=False) if i and widths[i] != widths[i - 1] else nn.Identity()
            for i in range(config.n_layer)])
        if config.cross_layer_kv:  # a learned vector per lending layer, added to its keys, tells them apart
            self.kv_offsets = nn.Parameter(torch.zeros(config.n_layer - 1, widths[0]))
        if config.priming:  # BiasLayer (part 3): one per primed layer, or one shared by all
            layers = config.primed_layers()
            layers = layers[:1] if config.priming_shared else layers
            self.bias_layers = nn.ModuleList([BiasLayer(config, widths[i]) for i in layers])
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()  # (B, T, C) tokens, (T, C) positions

        self.apply(self._init_weights)
        for m in self.modules():
            if getattr(m, "ZERO_INIT", False):
                torch.nn.init.zeros_(m.weight)
        for m in self.resize:
            if isinstance(m, nn.Linear):
                torch.nn.init.eye_(m.weight)

    def _init_weights(self, module):
        # zero_init_proj (docs/variants.md#zero_init_proj; modded-nanogpt, cf. Fixup, ReZero): every block
        # starts as the identity
        if self.config.zero_init_proj and getattr(module, "RESIDUAL_PROJ", False):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.0)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def forward(self, idx, targets=None, reduction="mean", *, cache=None, last_only=False, attn_impl=None,
                prefix_len=None, priming=None):
        """GPT.forward, plus: prefix_len (B,) prefix lengths, for prefix_lm models; priming: the bias
        layers' state from prime(), or (doc_idx, doc_len) to prime on those documents first, in this call."""
        cfg = self.config
        B, T = idx.size()
        past = 0 if cache is None else cache.length
        if past + T > cfg.block_size or (last_only and targets is not None):
            self.refuse(past + T, last_only and targets is not None, {})
        if cfg.prefix_lm and prefix_len is None:
            raise ValueError("a prefix_lm model needs prefix_len, the length of each sequence's prefix")
        if priming is not None and not cfg.priming:
            raise ValueError("priming given to a model without bias layers: build it with priming=True")
        prefix_len = prefix_len if cfg.prefix_lm else None
        if isinstance(priming, (tuple, list)):
            priming = self.prime(*priming)
        slot = {layer: i for i, layer in enumerate(cfg.primed_layers())} if priming is not None else {}
        manual = (attn_impl or cfg.attn_impl) == "manual"

        x, kv_input = self.embed(idx, past)  # (B, T, C)
        borrowed = None  # cross_layer_kv: the previous layer's keys and values
        for layer in range(cfg.n_layer):
            block = self.transformer.h[cfg.block_of_layer(layer)]
            x, kv = block(self.resize[layer](x), None if cache is None else cache.layers[layer], manual,
                          window=cfg.layer_windows[layer] if cfg.layer_windows else 0, prefix_len=prefix_len,
                          kv_input=block.ln_1(kv_input) if layer == 0 and kv_input is not None else None,
                          borrowed=borrowed)
            if layer in slot:  # priming: the primed bias layer writes into the stream after the block
                x = x + self.bias_layer(slot[layer])(x, priming[slot[layer]])
            if cfg.cross_layer_kv and layer + 1 < cfg.n_layer:
                borrowed = (kv[0] + self.kv_offsets[layer].view(1, cfg.n_head, 1, -1), kv[1])
        x = self.transformer.ln_f(x)
        logits = self.head(x[:, -1:] if last_only else x)  # (B, T, vocab)

        loss = None
        if targets is not None:
            if prefix_len is not None:  # prefix_lm: no loss inside the prefix
                targets = targets.masked_fill(~has_loss(targets, prefix_len, past), -1)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1),
                                   ignore_index=-1, reduction=reduction)
            loss = loss.view(B, T) if reduction == "none" else loss
        return logits, loss

    def embed(self, idx, past):
        """The residual stream's start: token + position embeddings after dropout, (B, T, C), and what
        layer 0's keys and values read instead of the stream (residual_root; None for "token")."""
        B, T = idx.size()
        pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # (T,)
        pos_emb = 0.0 if self.config.rotary else self.hook_pos_embed(self.transformer.wpe(pos))  # (T, C); rotary: none
        x = self.hook_embed(self.transformer.wte(idx)) + pos_emb  # (B, T, C)
        if self.config.residual_root == "token":
            return self.transformer.drop(x), None
        root = self.root if self.config.residual_root == "learned" else 0.0  # see __init__
        return self.transformer.drop((root + pos_emb).expand(B, T, -1)), self.transformer.drop(x)

    def head(self, x):
        """Logits from the last residual stream: lm_head (tie_dims > 0: [A | C])."""
        k, cap = self.config.tie_dims, self.config.logit_softcap
        if k <= 0:
            logits = self.lm_head(x)
        else:
            logits = F.linear(x, torch.cat([self.transformer.wte.weight[:, :k], self.lm_head.weight], dim=1))
        if cap:  # logit_softcap (docs/variants.md#logit_softcap; Gemma 2): c * tanh(logits / c) keeps every logit in (-c, c)
            logits = cap * torch.tanh(logits / cap)
        return logits

    def new_cache(self):
        """An empty KV cache (compress_past: one that keeps the old past as pairs; kv_shift: and the last raw token)."""
        kind = PairedKV if self.config.compress_past else ShiftKV if self.config.kv_shift else LayerKV
        return KVCache([kind() for _ in range(self.config.n_layer)])

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                 generator=None, prefix_len=None, priming=None):
        """GPT.generate, plus: prefix_lm models treat the first prefix_len tokens (default: the whole
        prompt) as the prefix; priming: a state from prime() (or (doc_idx, doc_len), primed once here)."""
        if isinstance(priming, (tuple, list)):
            priming = self.prime(*priming)
        if self.config.prefix_lm and prefix_len is None:
            prefix_len = idx.size(1)
        return super().generate(idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator,
                                prefix_len=prefix_len, priming=priming)

    def step_inputs(self, inputs, idx, cropped):
        """prefix_len as (B,) lengths of the tokens fed: the prefix shrinks as the window slides past it."""
        n = inputs["prefix_len"]
        prefix = None if n is None else torch.full((idx.size(0),), max(0, n - cropped), device=idx.device)
        return {**inputs, "prefix_len": prefix}

    # --- priming bias layers (BiasLayer, part 3) ---

    def bias_layer(self, slot):
        """The bias layer of the slot-th primed layer."""
        return self.bias_layers[0 if self.config.priming_shared else slot]

    def prime(self, doc_idx, doc_len=None):
        """The priming pass: (len(primed_layers), B, priming_dim) bias vectors from documents doc_idx (B, T);
        (len(primed_layers), B, priming_slots, priming_dim) with priming_slots > 1.

        The base model reads the documents (its own forward, the bias layers silent); each bias
        layer's activations on the residual stream after its block (hook_resid_post) are pooled
        over the document's tokens. doc_len (B,): real lengths of right-padded documents.
        Differentiable: the answer loss reaches c_in through it.
        """
        if not self.config.priming:
            raise ValueError("this model has no bias layers: build it with priming=True")
        B, T = doc_idx.shape
        doc_len = torch.full((B,), T, device=doc_idx.device) if doc_len is None else doc_len
        if int(doc_len.min()) < 1:
            raise ValueError("a priming document needs at least one token")
        resid = []  # the stream after every layer, in order (a shared block fires once per use)
        names = {f"transformer.h.{self.config.block_of_layer(i)}.hook_resid_post" for i in range(self.config.n_layer)}
        with self.hooks({n: resid.append for n in names}):
            self(doc_idx)
        mask = torch.arange(T, device=doc_idx.device)[None, :] < doc_len[:, None]
        states = []
        for slot, layer in enumerate(self.config.primed_layers()):
            bl = self.bias_layer(slot)
            states.append(bl.pool(bl.activations(resid[layer], bl.c_in.bias), mask, self.config.priming_pool))
        return torch.stack(states)


# =====================================================================================================
# 3. Additions to a pretrained model: LoRA, priming bias layers, Hugging Face import and export
# =====================================================================================================


class LoRALinear(nn.Linear):
    """lora_rank (Hu et al. 2106.09685, LoRA): y = W x + b + (alpha / r) B A x. A (r, in) starts random and
    B (out, r) at zero, so a new adapter leaves the layer exactly as it was; fine-tuning trains only A
    and B, r * (in + out) numbers per matrix, and merged_weight() folds them into W."""

    def __init__(self, n_in, n_out, bias, rank, alpha):
        super().__init__(n_in, n_out, bias=bias)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, n_in))
        self.lora_B = nn.Parameter(torch.zeros(n_out, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init (and peft's)

    def forward(self, x):
        return super().forward(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale

    def merged_weight(self):
        return self.weight + self.scale * self.lora_B @ self.lora_A


def with_lora(sublayer, rank, alpha):
    """The attention or MLP class whose matrices are LoRALinear layers."""
    def linear(n_in, n_out, bias):
        return LoRALinear(n_in, n_out, bias, rank, alpha)
    return type("LoRA" + sublayer.__name__, (sublayer,), {"Linear": staticmethod(linear)})


class LoRAModel:
    """What a model with adapters adds: merging them back into its weights."""

    def merge_lora(self):
        """The same function without adapters: a lora_rank=0 copy whose weights are W + (alpha / r) B A."""
        merged = GPT(replace(self.config, lora_rank=0))
        sd = {k: v for k, v in self.state_dict().items() if not k.endswith(NEW_PARAMS)}
        for name, m in self.named_modules():
            if isinstance(m, LoRALinear):
                sd[name + ".weight"] = m.merged_weight().detach()
        merged.load_state_dict(sd)
        return merged


class BiasLayer(nn.Module):
    """priming (docs/priming.md, "priming bias layers"): ln -> c_in -> GELU -> c_out after a block. GPT.prime
    pools its units' activations over a document into a primed bias, which replaces c_in's learned bias while
    the prompt runs without the document. Unprimed, or untrained (c_out = 0), it adds nothing.
    """

    def __init__(self, config, width):
        super().__init__()
        D = config.priming_dim
        self.ln = make_norm(config, width)
        self.c_in = nn.Linear(width, D)  # its bias is the learned bias that priming overrides
        self.c_out = nn.Linear(D, width, bias=False)
        self.c_out.ZERO_INIT = True  # an untrained bias layer writes nothing (GPT._init_weights, then zeroed)
        self.gelu = nn.GELU()
        if config.priming_slots > 1:
            # priming_slots (docs/priming.md#priming-that-binds-priming_slots): K queries pool K biases (one per
            # fact, say); each token mixes them by how its c_sel query matches each, so a name could pick its own
            # fact's bias. The queries start random: equal ones would pool equal slots and stay equal
            self.pool_query = nn.Parameter(torch.randn(config.priming_slots, D))
            self.c_sel = nn.Linear(width, D, bias=False)
        elif config.priming_pool == "attention":  # a learned query over the document; zero = the mean
            self.pool_query = nn.Parameter(torch.zeros(D))
        self.hook_act = HookPoint()  # (B, T, priming_dim) the units' activations with the primed bias
        self.hook_out = HookPoint()  # (B, T, width) what the layer adds to the residual stream

    def forward(self, x, primed_bias):
        return self.hook_out(self.c_out(self.hook_act(self.activations(x, primed_bias))))

    def activations(self, x, bias):
        """GELU(c_in(ln(x)) + bias), bias (D,) or (B, D): the same units in both passes. Slots, bias (B, K, D):
        each token's bias is the slots' mix, softmax over K of c_sel(ln(x)) . slot / sqrt(D)."""
        x = self.ln(x)
        if bias.dim() == 3:  # priming_slots (see __init__)
            w = (self.c_sel(x) @ bias.transpose(1, 2) / math.sqrt(bias.size(-1))).softmax(-1)  # (B, T, K)
            return self.gelu(x @ self.c_in.weight.t() + w @ bias)
        return self.gelu(x @ self.c_in.weight.t() + (bias if bias.dim() == 1 else bias[:, None, :]))

    def pool(self, h, mask, how):
        """(B, T, D) activations over the document -> (B, D), or (B, K, D) with K slots; mask (B, T) marks
        real tokens."""
        m = mask.to(h.dtype)[..., None]
        if how == "mean":
            return (h * m).sum(1) / m.sum(1)
        if how == "last":
            last = mask.long().sum(1) - 1
            return h[torch.arange(h.size(0), device=h.device), last]
        if self.pool_query.dim() == 2:  # priming_slots: one softmax over the document per query
            w = (h @ self.pool_query.t() / math.sqrt(h.size(-1))).masked_fill(~mask[..., None], float("-inf")).softmax(1)
            return w.transpose(1, 2) @ h  # (B, K, D)
        w = (h @ self.pool_query / math.sqrt(h.size(-1))).masked_fill(~mask, float("-inf")).softmax(1)
        return (w[..., None] * h).sum(1)  # "attention"


# HF's GPT-2 stores these four as Conv1D, (in, out); nn.Linear holds (out, in). Transposing both ways
# is one function. Its attention-mask buffers (.attn.bias) are not weights.
HF_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
NEW_PARAMS = ("lora_A", "lora_B")  # what LoRA adds to a pretrained model (bias layers add a module)
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def swap_conv1d(state_dict):
    """An HF GPT-2 state dict with this repo's layout, or the reverse: the same keys (nanoGPT's)."""
    return {k: v.t().contiguous() if k.endswith(HF_CONV1D) else v for k, v in state_dict.items()
            if not k.endswith((".attn.bias", ".attn.masked_bias"))}


def config_from_hf(c):
    """GPTConfig keys for a transformers GPT2Config; a ValueError for settings this model lacks."""
    unsupported = {"activation_function": c.activation_function not in HF_ACTIVATIONS,
                   "layer_norm_epsilon": c.layer_norm_epsilon != 1e-5, "n_inner": c.n_inner not in (None, 4 * c.n_embd),
                   "scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx,
                   "scale_attn_weights": not c.scale_attn_weights}
    bad = [f"{k}={getattr(c, k)!r}" for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f"this GPT-2 config has settings model.py does not implement: {', '.join(bad)}")
    return dict(block_size=c.n_positions, vocab_size=c.vocab_size, n_layer=c.n_layer, n_head=c.n_head,
                n_embd=c.n_embd, dropout=0.0, bias=True, mlp_act=HF_ACTIVATIONS[c.activation_function],
                tie_dims=-1 if c.tie_word_embeddings else 0)
