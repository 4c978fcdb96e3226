"""
Device setup: which device and precision a run uses, DDP processes, and CPU memory behaviour.
"""

import ctypes
import os
from contextlib import nullcontext
from dataclasses import replace

import torch
from torch.distributed import destroy_process_group, init_process_group

from helpers.config import UserError


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    A CPU training step frees and reallocates megabytes of activations; by default glibc returns
    some of them to the OS every step (mmap/trim), so the next step takes ~2,000 page faults and
    writes into cold pages. Keeping them (what PyTorch's CPU guide gets from jemalloc/tcmalloc)
    speeds the step up with the same peak RSS (docs/speed.md). No-op off glibc (macOS, musl).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    return bool(mallopt(m_trim_threshold, 1 << 30) and mallopt(m_mmap_threshold, 32 << 20))


def resolve_device(device):
    """The device a `device` key names: "auto" is cuda when a GPU is available, else cpu."""
    return device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")


def setup_device(cfg):
    """(device, device_type, dtype name, autocast context) from the device and dtype keys."""
    device = resolve_device(cfg.device)
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


def setup_ddp(cfg):
    """(cfg, ddp, rank, world): DDP when torchrun started this process (it sets RANK), else one process.

    Under DDP each process takes its own GPU (cfg.device becomes cuda:LOCAL_RANK) and
    gradient_accumulation_steps is split between the processes.
    """
    if int(os.environ.get("RANK", -1)) == -1:
        return cfg, False, 0, 1
    device = resolve_device(cfg.device)
    backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.startswith("cuda") else "gloo")
    init_process_group(backend=backend)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.startswith("cuda"):
        cfg = replace(cfg, device=f"cuda:{int(os.environ['LOCAL_RANK'])}")
        torch.cuda.set_device(cfg.device)
    if cfg.gradient_accumulation_steps % world:
        raise UserError(f"gradient_accumulation_steps ({cfg.gradient_accumulation_steps}) must be a "
                        f"multiple of the number of processes ({world})")
    return cfg, True, rank, world


def end_ddp(ddp):
    """Wait until every process is done (rank 0 evaluates and plots last), then leave the group."""
    if ddp:
        torch.distributed.barrier()
        destroy_process_group()


def from_rank0(flag, device):
    """Rank 0's value of a bool, on every DDP process (so that all of them stop together)."""
    t = torch.tensor([float(flag)], device=device)
    torch.distributed.broadcast(t, 0)
    return bool(t.item())
