"""
Train a GPT, in one readable story: config -> data -> model -> optimizer -> loop -> plots.

    python train.py                                       # the main job: a small model on the facts corpus
    python train.py config/train_shakespeare_char.py --n_layer=4 --device=cpu
    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py    # DDP
    python train.py --dataset=priming --freeze_base=True --base_ckpt=BASE/ckpt.pt --priming=True   # bias layers

Every eval appends one line to out_dir/metrics.jsonl: train/val loss, bits per byte, the loss at
every position of the context (in-context learning shows up as that curve bending down along the
sequence) and the mean probability given to the correct next token. The plots are drawn from it.
"""

import ctypes
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

from configurator import UserError, configure, main_guard
from model import GPT, GPTConfig, has_loss

HERE = os.path.dirname(os.path.abspath(__file__))


# -----------------------------------------------------------------------------
# Config. Model keys (n_layer, block_size, ...) come from GPTConfig; both are set the same way.

@dataclass
class TrainConfig:
    # I/O
    out_dir: str = "out-facts"  # checkpoint, config.json and metrics.jsonl go here
    plot_dir: str = ""  # where the PNGs go; "" means plots/<name of out_dir>
    eval_interval: int = 100  # evaluate every this many iterations (and at 0 and at max_iters)
    log_interval: int = 50  # print a progress line every this many iterations
    eval_iters: int = 10  # batches per split per evaluation; 0: the whole split, every target token once
    eval_only: bool = False  # evaluate once and exit
    always_save_checkpoint: bool = False  # save at every eval, not only when val loss improves
    init_from: str = "scratch"  # "scratch" or "resume" (from out_dir/ckpt.pt)
    overwrite: bool = False  # allow a scratch run to replace an existing checkpoint in out_dir
    plot_only: bool = False  # redraw the plots from out_dir/metrics.jsonl and exit
    # data
    dataset: str = "facts"  # reads data/<dataset>/{train,val}.bin and meta.json
    data_dir: str = ""  # "" means data/<dataset> next to train.py
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step (split across DDP ranks)
    batch_size: int = 12  # sequences per micro-batch
    respect_doc_boundaries: bool = True  # windows stay inside one document (start at its start if it fits); False: nanoGPT's
    # optimizer: AdamW, or Muon for the hidden matrices and AdamW for the rest
    optimizer: str = "adamw"  # "adamw", or "muon": torch.optim.Muon on the blocks' 2-D weight matrices, AdamW on the rest
    learning_rate: float = 2e-3  # peak learning rate (AdamW's)
    max_iters: int = 500  # optimizer steps
    weight_decay: float = 0.1  # on matrices and embeddings only
    beta1: float = 0.9  # AdamW's momentum decay
    beta2: float = 0.99  # AdamW's second-moment decay (0.95 for large models, 0.99 for small batches)
    grad_clip: float = 1.0  # clip the global gradient norm at this value; 0 disables
    muon_lr: float = 0.02  # Muon's peak learning rate (optimizer="muon"); the schedule scales it like learning_rate
    muon_momentum: float = 0.95  # Muon's momentum (Nesterov)
    muon_weight_decay: float = 0.0  # Muon's decoupled weight decay (multiplied by its learning rate)
    # learning-rate schedule: linear warmup, then cosine down to min_lr
    decay_lr: bool = True  # False keeps learning_rate constant after warmup
    warmup_iters: int = 50  # linear warmup steps
    lr_decay_iters: int = 500  # steps over which the cosine runs (~max_iters per Chinchilla)
    min_lr: float = 2e-4  # final learning rate (~learning_rate/10 per Chinchilla)
    # system
    device: str = "auto"  # "cpu", "cuda", "cuda:1", "mps"; "auto" is cuda when available, else cpu
    dtype: str = "auto"  # "float32", "bfloat16" or "float16"; "auto": bfloat16 on CUDA if supported, else float32
    compile: bool = False  # torch.compile the model (minutes of warm-up; worth it on GPU)
    seed: int = 1337  # seeds init, dropout and batch sampling
    target_val_loss: float = 0.0  # 0: off; X: stop at the first eval with val loss <= X and record the time to it
    backend: str = "auto"  # DDP backend: "nccl" on CUDA, "gloo" on CPU
    # priming (model.BiasLayer): train only the bias layers of a priming model on top of a frozen base
    freeze_base: bool = False  # load base_ckpt into a priming=True model, train only its bias layers on doc -> rest
    base_ckpt: str = ""  # the base model's checkpoint, for freeze_base


# The main job's model: small enough to train on a laptop CPU in a few minutes.
MAIN_JOB_MODEL = GPTConfig(block_size=384, vocab_size=58, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)


def check_train_config(c):
    if c.init_from not in ("scratch", "resume"):
        raise UserError(f"init_from must be 'scratch' or 'resume', got {c.init_from!r}")
    if c.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"dtype must be auto, float32, bfloat16 or float16, got {c.dtype!r}")
    for name in ("batch_size", "gradient_accumulation_steps", "eval_interval", "log_interval"):
        if getattr(c, name) < 1:
            raise UserError(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.eval_iters < 0:
        raise UserError(f"eval_iters must be >= 1 batches, or 0 for the whole split; got {c.eval_iters}")
    if c.eval_iters == 0 and c.freeze_base:
        raise UserError("eval_iters=0 (the whole split) is not implemented for freeze_base's priming batches: "
                        "give a number of batches, e.g. --eval_iters=50")
    if c.max_iters < 0:
        raise UserError(f"max_iters must be >= 0, got {c.max_iters}")
    if c.optimizer not in ("adamw", "muon"):
        raise UserError(f"optimizer must be 'adamw' or 'muon', got {c.optimizer!r}")
    if c.optimizer == "muon" and c.learning_rate <= 0:
        raise UserError("optimizer='muon' scales muon_lr by the schedule's learning_rate / learning_rate: "
                        "learning_rate must be > 0")
    if c.target_val_loss < 0:
        raise UserError(f"target_val_loss must be >= 0 (0 = off), got {c.target_val_loss}")
    if c.freeze_base and c.init_from == "scratch" and not c.base_ckpt:
        raise UserError("freeze_base needs --base_ckpt=PATH, the checkpoint of the base model to prime")
    if c.freeze_base and not c.respect_doc_boundaries:
        raise UserError("freeze_base splits documents at their recorded prefix: keep respect_doc_boundaries=True")


# -----------------------------------------------------------------------------
# Data: token bins on disk, memory-mapped, never loaded whole.

def load_meta(data_dir, dataset):
    meta_path = os.path.join(data_dir, "meta.json")
    hint = f"run `python prepare/{dataset}.py` first" if os.path.exists(os.path.join(HERE, "prepare", f"{dataset}.py")) \
        else "run the prepare/ script that writes it"
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
    return meta


class Batches:
    """Random (x, y) windows from a split: y is x shifted by one token.

    With respect_doc_boundaries (the default) no window spans two documents: each picks a random
    document and starts inside it, at its first token when the document fits in the context, and
    targets past the document's end are -1 (no loss). On the facts corpus position t in the context
    is then position t in a document, so the per-position loss shows how much reading the document
    so far helps. A dataset that is one long text (shakespeare) gets ordinary random windows either
    way. False gives GPT-2/nanoGPT windows anywhere in the token stream, across documents.
    """

    def __init__(self, data_dir, meta, block_size, batch_size, device, respect_doc_boundaries=True, prefix_lm=False):
        self.paths = {s: os.path.join(data_dir, f"{s}.bin") for s in ("train", "val")}
        self.dtype = np.dtype(meta["dtype"])
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

    def sweep(self, split, generator):
        """Batches that score every target token of the split once: consecutive windows from the
        start (of each document, with respect_doc_boundaries). eval_iters=0 evaluates on these: the
        exact loss of the split, with none of the sampling noise of a few random batches (nanoGPT's
        1.886 on the CPU recipe is one such draw: README "nanoGPT's CPU recipe"). A last piece
        shorter than the context is dropped when the text is one stream."""
        data = np.memmap(self.paths[split], dtype=self.dtype, mode="r")
        T, d = self.block_size, None
        if self.docs is None:
            starts = np.arange(0, len(data) - T, T)
        else:
            bounds, _ = self.docs[split]
            per_doc = np.maximum(bounds[1:] - bounds[:-1] + T - 2, 0) // T  # windows for a document's targets
            d = np.repeat(np.arange(len(per_doc)), per_doc)
            first = np.repeat(np.cumsum(per_doc) - per_doc, per_doc)  # index of its document's first window
            starts = bounds[d] + T * (np.arange(len(d)) - first)
        for i in range(0, len(starts), self.batch_size):
            yield self.windows(data, split, starts[i:i + self.batch_size],
                               None if d is None else d[i:i + self.batch_size], generator)

    def windows(self, data, split, starts, d, generator):
        """The batch of windows starting at `starts` (inside documents d, unless d is None)."""
        B, T = len(starts), self.block_size
        # (B, T + 1): one gather for the whole batch, not a Python loop of slices (0.86 -> 0.38 ms, ~1% of a step)
        idx = starts[:, None] + np.arange(T + 1)
        if d is None:
            w = torch.from_numpy(data[idx].astype(np.int64))
            x, y = w[:, :-1], w[:, 1:]
            prefix = np.zeros(B, dtype=np.int64)
        else:
            # target t exists while it is inside the document; the rest is 0 (input) and -1 (no loss)
            bounds, prefixes = self.docs[split]
            lo, hi = bounds[d], bounds[d + 1]
            w = torch.from_numpy(data[np.minimum(idx, len(data) - 1)].astype(np.int64))
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


def forward_kwargs(extra):
    """The third item of a batch as forward() keywords: prefix_len (Batches) or a dict (PrimingBatches)."""
    return extra if isinstance(extra, dict) else {"prefix_len": extra}


# -----------------------------------------------------------------------------
# Evaluation and the learning-rate schedule

def unigram_distribution(path, dtype, vocab_size, max_tokens=50_000_000, chunk=1_000_000):
    """The data's token frequencies (vocab_size,), counted over the first max_tokens tokens of a bin.

    A chunked bincount, each chunk read afresh (np.fromfile, not one long-lived memmap whose touched
    pages would stay resident): memory stays at one chunk (~10 MB with bincount's int64 copy), and
    a 9B-token dataset costs no more than its first 50M tokens (a sample: plenty for a unigram
    estimate, unless the data is sorted by topic). bench_memory.py checks that peak RSS is flat.
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
    """Mean loss per split over eval_iters batches (0: the whole split, Batches.sweep); for val also
    loss per position and mean_p.

    Batches come from a generator seeded the same way at every eval, so successive evals (and
    runs) score the very same tokens and their differences are not sampling noise.

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
        split_batches = (batches.get(split, g) for _ in range(eval_iters)) if eval_iters else batches.sweep(split, g)
        for x, y, extra in split_batches:
            kw = forward_kwargs(extra)
            prefix_len = kw.get("prefix_len")
            with ctx:
                logits, loss = model(x, y, reduction="none", **kw)  # (B, T), 0 where no target
            valid = has_loss(y, prefix_len).float()
            if unigram is not None and split == "val":
                q_sum += torch.einsum("btv,bt->v", logits.softmax(-1, dtype=torch.float32), valid).cpu()
            loss, valid = loss.float().cpu(), valid.cpu()
            loss_sum += loss.sum(0)  # summed per position
            count += valid.sum(0)
            p_sum += (torch.exp(-loss) * valid).sum().item()
        out[f"{split}_loss"] = (loss_sum.sum() / count.sum()).item()
        out[f"{split}_bpb"] = out[f"{split}_loss"] / math.log(2) / bytes_per_token[split]
        if split == "val":
            per_pos = (loss_sum / count.clamp(min=1)).tolist()  # positions no document reaches: None
            out["position_loss"] = [round(v, 5) if n > 0 else None for v, n in zip(per_pos, count.tolist())]
            out["mean_p"] = p_sum / count.sum().item()  # mean probability of the right token
            if unigram is not None:
                q = q_sum / count.sum()
                out["unigram_kl"] = torch.sum(unigram * (unigram.clamp(min=1e-30).log() - q.log())).item()
    model.train()
    return out


def get_lr(it, c):
    """Linear warmup for warmup_iters, cosine decay to min_lr at lr_decay_iters, then min_lr."""
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    if not c.decay_lr:
        return c.learning_rate
    if it > c.lr_decay_iters:
        return c.min_lr
    ratio = (it - c.warmup_iters) / max(1, c.lr_decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


# -----------------------------------------------------------------------------
# Device, precision, and one optimizer step (bench.py times exactly this function)

def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    A CPU training step frees and reallocates megabytes of activations; by default glibc returns
    some of them to the OS every step (mmap/trim), so the next step takes ~2,000 page faults and
    writes into cold pages. Keeping them (what PyTorch's CPU guide gets from jemalloc/tcmalloc)
    made the recipe's step ~5% faster here, with the same peak RSS. No-op off glibc (macOS, musl).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    return bool(mallopt(m_trim_threshold, 1 << 30) and mallopt(m_mmap_threshold, 32 << 20))


def setup_device(cfg):
    """(device, device_type, dtype name, autocast context) from the device and dtype keys."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device} requested but CUDA is not available: use --device=cpu")
    device_type = "cuda" if device.startswith("cuda") else device.split(":")[0]
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if dtype == "float16" and device_type != "cuda":
        raise UserError("dtype float16 needs a CUDA device: use --dtype=float32 (or bfloat16)")
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = nullcontext() if dtype == "float32" else torch.autocast(device_type=device_type, dtype=ptdtype)
    torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls on Ampere+ when in float32
    torch.backends.cudnn.allow_tf32 = True
    if device_type == "cpu":
        keep_freed_memory()
    return device, device_type, dtype, ctx


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

    Muon (Jordan et al. 2024, "Momentum Orthogonalized by Newton-Schulz") replaces each hidden
    matrix's momentum update by the nearest semi-orthogonal matrix, so every direction of the
    matrix learns at the same rate. It took modded-nanogpt's GPT-2 speedrun from 31.4 to 24.9
    minutes (~1.5x sample efficiency over tuned AdamW); embeddings, the head and vectors stay on
    AdamW, as Muon's authors prescribe. Confirmed here if it reaches the recipe's loss in enough
    fewer steps to pay for its cost per step (five Newton-Schulz iterations per matrix, whatever
    the batch: 1.36x the recipe's CPU step; README "Speed").

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
    adamw = torch.optim.AdamW([
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},  # embeddings, head
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},  # gains, biases
    ], lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
        **({"fused": True} if device_type in ("cuda", "cpu") else {}))
    for g in adamw.param_groups:
        g["lr_ratio"] = 1.0
    return Optimizers(muon, adamw)


def train_step(model, optimizer, scaler, get_batch, grad_accum, ctx, grad_clip, ddp=False):
    """One optimizer step over grad_accum micro-batches; returns the last micro-batch's loss."""
    for micro_step in range(grad_accum):
        x, y, extra = get_batch()
        if ddp:  # all-reduce gradients only on the last micro-step
            model.require_backward_grad_sync = micro_step == grad_accum - 1
        with ctx:
            _, loss = model(x, y, **forward_kwargs(extra))
            loss = loss / grad_accum
        scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss * grad_accum


# -----------------------------------------------------------------------------
# Checkpoints: written to a temp file and renamed, so a crash never leaves a broken one behind.

def atomic_write(path, write):
    """write(tmp_path), then rename onto path: readers see the old file or the new one, never half."""
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def atomic_write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def load_checkpoint(path):
    """torch.load with a one-line error for a missing, corrupt or truncated file."""
    if not os.path.exists(path):
        raise UserError(f"no checkpoint at {path}: train one first, or point --out_dir at a run that has one")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        ckpt["model"], ckpt["model_args"]  # noqa: B018 (must exist)
    except Exception as e:
        raise UserError(f"could not read checkpoint {path} ({type(e).__name__}); it is corrupt or truncated") from None
    # checkpoints from torch.compile'd models (e.g. nanoGPT's) carry an _orig_mod. prefix
    ckpt["model"] = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    return ckpt


def model_from_checkpoint(ckpt):
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    return model


# -----------------------------------------------------------------------------
# Plots: drawn from metrics.jsonl, so they can be redrawn at any time (--plot_only=True).

def read_metrics(out_dir):
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_run(out_dir, plot_dir):
    """Loss per position (one curve per eval, coloured by iteration), loss curves and mean_p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(out_dir)
    if not rows:
        return []
    os.makedirs(plot_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(out_dir))
    iters = [r["iter"] for r in rows]
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    cmap = plt.get_cmap("viridis")
    norm = matplotlib.colors.Normalize(vmin=min(iters), vmax=max(max(iters), 1))
    for r in rows:
        ax.plot([math.nan if v is None else v for v in r["position_loss"]], color=cmap(norm(r["iter"])), lw=1.2)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="iteration")
    ax.set(xlabel="position in context (tokens)", ylabel="val loss (nats)",
           title=f"{name}: loss at each position, one curve per eval")
    paths.append(os.path.join(plot_dir, "position_loss.png"))

    fig2, ax2 = plt.subplots(figsize=(7, 4.5))
    ax2.plot(iters, [r["train_loss"] for r in rows], label="train")
    ax2.plot(iters, [r["val_loss"] for r in rows], label="val")
    ax2.set(xlabel="iteration", ylabel="loss (nats)", title=f"{name}: loss")
    ax2.legend()
    paths.append(os.path.join(plot_dir, "loss.png"))

    fig3, ax3 = plt.subplots(figsize=(7, 4.5))
    ax3.plot(iters, [r["mean_p"] for r in rows], marker=".")
    ax3.set(xlabel="iteration", ylabel="mean p(correct next token)", title=f"{name}: mean probability of the target")
    paths.append(os.path.join(plot_dir, "mean_p.png"))

    for f, p in zip((fig, fig2, fig3), paths):
        f.tight_layout()
        atomic_write(p, lambda tmp, f=f: f.savefig(tmp, dpi=110, format="png"))
        plt.close(f)
    return paths


# -----------------------------------------------------------------------------

def main(argv=None):
    (cfg, mcfg), given = configure([TrainConfig(), MAIN_JOB_MODEL], argv, description=__doc__)
    check_train_config(cfg)
    out_dir = cfg.out_dir
    plot_dir = cfg.plot_dir or os.path.join(HERE, "plots", os.path.basename(os.path.normpath(out_dir)))
    ckpt_path = os.path.join(out_dir, "ckpt.pt")
    if cfg.plot_only:
        for p in plot_run(out_dir, plot_dir):
            print(f"wrote {p}")
        return

    # --- system: device, precision, DDP ---
    ddp = int(os.environ.get("RANK", -1)) != -1
    if ddp:
        device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.startswith("cuda") else "gloo")
        init_process_group(backend=backend)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if device.startswith("cuda"):
            cfg = replace(cfg, device=f"cuda:{int(os.environ['LOCAL_RANK'])}")
            torch.cuda.set_device(cfg.device)
        if cfg.gradient_accumulation_steps % world:
            raise UserError(f"gradient_accumulation_steps ({cfg.gradient_accumulation_steps}) must be a "
                            f"multiple of the number of processes ({world})")
    else:
        rank, world = 0, 1
    master = rank == 0
    grad_accum = cfg.gradient_accumulation_steps // world
    device, device_type, dtype, ctx = setup_device(cfg)

    # --- data ---
    data_dir = cfg.data_dir or os.path.join(HERE, "data", cfg.dataset)
    if cfg.dataset == "facts" and not cfg.data_dir and not os.path.exists(os.path.join(data_dir, "meta.json")) and master:
        from prepare import facts  # the offline default generates its own data
        facts.main([])
    if ddp:
        torch.distributed.barrier()
    meta = load_meta(data_dir, cfg.dataset)
    bytes_per_token = {s: meta["splits"][s]["bytes"] / meta["splits"][s]["tokens"] for s in ("train", "val")}

    # --- model: from scratch or from the checkpoint in out_dir ---
    ckpt, ckpt_base = None, None
    if cfg.init_from == "resume":
        ckpt = load_checkpoint(ckpt_path)
        model_args = ckpt["model_args"]
        if ckpt.get("meta") and (ckpt["meta"]["tokenizer"], ckpt["meta"]["vocab_size"]) != (meta["tokenizer"], meta["vocab_size"]):
            raise UserError(f"checkpoint was trained on {ckpt['meta']['tokenizer']} tokens (vocab "
                            f"{ckpt['meta']['vocab_size']}) but {data_dir} holds {meta['tokenizer']} (vocab "
                            f"{meta['vocab_size']}): use the same --dataset")
        changed = [k for k in given if k in model_args and getattr(mcfg, k) != model_args[k]]
        if changed:
            raise UserError(f"cannot change model key(s) {', '.join(changed)} when resuming")
        mcfg = GPTConfig(**model_args)
    else:
        if os.path.exists(ckpt_path) and not cfg.overwrite:
            raise UserError(f"{ckpt_path} already exists: pass --init_from=resume to continue it, "
                            f"--overwrite=True to replace it, or choose another --out_dir")
        if cfg.freeze_base:
            base = load_checkpoint(cfg.base_ckpt)
            ckpt_base = base  # its weights are loaded below
            changed = [k for k in given if hasattr(mcfg, k) and not k.startswith("priming")
                       and getattr(mcfg, k) != base["model_args"].get(k)]
            if changed:
                raise UserError(f"freeze_base keeps the base model as it is: only priming keys may be set, "
                                f"not {', '.join(changed)}")
            if not mcfg.priming:
                raise UserError("freeze_base trains bias layers: pass --priming=True")
            if base.get("meta") and (base["meta"]["tokenizer"], base["meta"]["vocab_size"]) != (meta["tokenizer"], meta["vocab_size"]):
                raise UserError(f"{cfg.base_ckpt} was trained on {base['meta']['tokenizer']} tokens but {data_dir} "
                                f"holds {meta['tokenizer']}: prime on the base model's own dataset")
            mcfg = GPTConfig(**{**base["model_args"], **{k: v for k, v in asdict(mcfg).items() if k.startswith("priming")}})
        elif "vocab_size" not in given:
            mcfg = GPTConfig(**{**asdict(mcfg), "vocab_size": meta["vocab_size"]})
    if mcfg.vocab_size < meta["vocab_size"]:
        raise UserError(f"the model's vocab_size {mcfg.vocab_size} is smaller than the data's "
                        f"{meta['vocab_size']} ({data_dir}/meta.json)")
    if cfg.freeze_base:
        batches = PrimingBatches(data_dir, meta, mcfg.block_size, cfg.batch_size, device)
    else:
        batches = Batches(data_dir, meta, mcfg.block_size, cfg.batch_size, device, cfg.respect_doc_boundaries, mcfg.prefix_lm)
    unigram = unigram_distribution(batches.paths["train"], meta["dtype"], mcfg.vocab_size) if master else None

    torch.manual_seed(cfg.seed)
    model = GPT(mcfg)
    iter_num, best_val_loss = 0, float("inf")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        iter_num, best_val_loss = ckpt["iter_num"], ckpt["best_val_loss"]
    if ckpt_base is not None:  # freeze_base: the base weights; the bias layers keep their fresh init
        missing, unexpected = model.load_state_dict(ckpt_base["model"], strict=False)
        if unexpected or any(not k.startswith("bias_layers.") for k in missing):
            raise UserError(f"{cfg.base_ckpt} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if cfg.freeze_base:  # only the bias layers learn; configure_optimizers sees only them
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("bias_layers.")
    model.to(device)
    raw_model = model  # what we checkpoint: no DDP or compile wrappers, no _orig_mod. prefixes

    # --- optimizer ---
    optimizer = make_optimizer(raw_model, cfg, device_type)
    if ckpt is not None:
        was = ckpt.get("config", {}).get("train", {}).get("optimizer", "adamw")
        if was != cfg.optimizer:
            raise UserError(f"the checkpoint was trained with optimizer={was}: pass --optimizer={was} to resume it")
        optimizer.load_state_dict(ckpt["optimizer"])
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))

    # batch sampling has its own generator so that evals never shift the training data stream
    gen = torch.Generator().manual_seed(cfg.seed + rank)
    if ckpt is not None and world == 1:
        gen.set_state(ckpt["rng"]["batches"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device_type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
    if cfg.compile:
        print("compiling the model...")
        model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[int(os.environ["LOCAL_RANK"])] if device_type == "cuda" else None)

    tokens_per_iter = grad_accum * world * cfg.batch_size * mcfg.block_size
    config_record = {"train": asdict(cfg), "model": asdict(mcfg), "dtype": dtype, "device": device, "world_size": world}
    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    writes = master and not cfg.eval_only  # eval_only reports and leaves out_dir as it was
    if writes:
        os.makedirs(out_dir, exist_ok=True)
        atomic_write_text(os.path.join(out_dir, "config.json"), json.dumps(config_record, indent=1))
        # metrics.jsonl describes this run: start it afresh, or on resume keep rows up to the checkpoint
        kept = [r for r in read_metrics(out_dir) if ckpt is not None and r["iter"] <= iter_num]
        atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
    if master:
        print(f"{raw_model.get_num_params() / 1e6:.2f}M parameters | {tokens_per_iter:,} tokens per iteration "
              f"({grad_accum} accumulation steps x {world} processes x {cfg.batch_size} x {mcfg.block_size}) "
              f"| {device} {dtype}")

    def save_checkpoint(iter_num, best_val_loss):
        ckpt = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "model_args": asdict(mcfg),
                "config": config_record, "iter_num": iter_num, "best_val_loss": best_val_loss, "meta": meta,
                "rng": {"torch": torch.get_rng_state(), "batches": gen.get_state(),
                        "cuda": torch.cuda.get_rng_state() if device_type == "cuda" else None}}
        atomic_write(ckpt_path, lambda tmp: torch.save(ckpt, tmp))

    # --- the training loop ---
    t_start = time.time()
    start_iter, tokens_seen = iter_num, iter_num * tokens_per_iter
    dt_avg = None
    since_eval = (time.time(), iter_num)  # to time training iterations without the evals
    reached = False  # target_val_loss reached
    while True:
        lr = get_lr(iter_num, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_ratio", 1.0)

        # evaluate at 0, every eval_interval and at the end (a resumed run already did its first one)
        eval_now = cfg.eval_only or ((iter_num % cfg.eval_interval == 0 or iter_num == cfg.max_iters)
                                     and not (ckpt is not None and iter_num == start_iter))
        if master and eval_now:
            t_eval, iters = time.time(), iter_num - since_eval[1]
            m = evaluate(raw_model, batches, cfg.eval_iters, ctx, cfg.seed, bytes_per_token, unigram)
            elapsed = time.time() - t_start
            row = {"iter": iter_num, "train_loss": m["train_loss"], "val_loss": m["val_loss"],
                   "train_bpb": m["train_bpb"], "val_bpb": m["val_bpb"], "lr": lr, "elapsed_s": round(elapsed, 3),
                   "tokens": tokens_seen, "tok_per_s": (tokens_seen - start_iter * tokens_per_iter) / max(elapsed, 1e-9),
                   "ms_per_iter": round(1000 * (t_eval - since_eval[0]) / iters, 3) if iters else None,
                   "mean_p": m["mean_p"], "unigram_kl": m.get("unigram_kl"), "position_loss": m["position_loss"]}
            print(f"eval {iter_num}: train loss {m['train_loss']:.4f}, val loss {m['val_loss']:.4f} "
                  f"({m['val_bpb']:.3f} bits/byte), mean p {m['mean_p']:.3f}")
            if cfg.target_val_loss:
                # the race: wall time from the loop's start to the end of the first eval at or below
                # the target, evals included (startup before the loop is not: imports, data, model)
                reached = m["val_loss"] <= cfg.target_val_loss
                row["reached_target"] = reached
                if reached:
                    row["time_to_target_s"] = round(elapsed, 3)
                    print(f"reached target val loss {cfg.target_val_loss} at iter {iter_num}: "
                          f"time to target {elapsed:.1f}s (evals included)")
            if not writes:
                break
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            if m["val_loss"] < best_val_loss or cfg.always_save_checkpoint:
                best_val_loss = min(best_val_loss, m["val_loss"])
                if iter_num > 0:
                    save_checkpoint(iter_num, best_val_loss)
                    print(f"saved {ckpt_path}")
            since_eval = (time.time(), iter_num)
        if ddp and cfg.target_val_loss and eval_now:  # every process stops when rank 0 reaches the target
            flag = torch.tensor([float(reached)], device=device)
            torch.distributed.broadcast(flag, 0)
            reached = bool(flag.item())
        if iter_num >= cfg.max_iters or cfg.eval_only or reached:
            break

        t0 = time.time()
        loss = train_step(model, optimizer, scaler, lambda: batches.get("train", gen), grad_accum, ctx,
                          cfg.grad_clip, ddp)
        iter_num += 1
        tokens_seen += tokens_per_iter

        if master and (iter_num % cfg.log_interval == 0 or iter_num == cfg.max_iters):
            lossf = loss.item()  # .item() syncs with the GPU: only when we print
            dt = time.time() - t0
            dt_avg = dt if dt_avg is None else 0.9 * dt_avg + 0.1 * dt
            eta = (cfg.max_iters - iter_num) * dt_avg
            print(f"iter {iter_num}/{cfg.max_iters}: loss {lossf:.4f}, lr {lr:.2e}, {dt * 1000:.1f} ms/iter, "
                  f"{tokens_per_iter / dt:,.0f} tok/s, ETA {eta / 60:.1f} min")

    if writes:
        if cfg.target_val_loss and not reached:
            print(f"target val loss {cfg.target_val_loss} not reached in {iter_num} iterations")
        print(f"done in {time.time() - t_start:.1f}s; best val loss {best_val_loss:.4f}")
        for p in plot_run(out_dir, plot_dir):
            print(f"wrote {p}")
    if ddp:
        destroy_process_group()


if __name__ == "__main__":
    main_guard(main)
