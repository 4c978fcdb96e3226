"""
Benchmark training speed for any config: the same keys as train.py, plus a few of its own.

    python bench.py config/train_shakespeare_char.py --device=cpu --block_size=64 --batch_size=12 \
        --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0
    python bench.py config/train_gpt2.py --bench_iters=50            # on a GPU

Times `train.train_step` (forward, backward, clip, AdamW or Muon + AdamW) for bench_iters iterations after
warmup_iters, and prints ms/iter, tokens/s, MFU against a peak measured here with a large matmul in
the run's dtype (or --peak_tflops), and peak memory. The last line is one JSON object.
"""

import json
import os
import resource
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from configurator import configure, main_guard
from model import GPT
from train import (MAIN_JOB_MODEL, Batches, TrainConfig, check_train_config, load_meta, make_optimizer, setup_device,
                   train_step)


@dataclass
class BenchConfig:
    bench_iters: int = 20  # timed iterations
    warmup_iters_bench: int = 5  # untimed iterations first (compile, allocator, caches)
    data: str = "random"  # "random": uniform random tokens; "dataset": batches from --dataset like train.py
    peak_tflops: float = 0.0  # the device's peak for MFU; 0 measures it with a matmul


def measure_peak_flops(device, ptdtype, n=None, reps=10):
    """FLOP/s of a large square matmul: the practical ceiling that MFU is measured against."""
    n = n or (8192 if device.startswith("cuda") else 1024)
    a = torch.randn(n, n, device=device, dtype=ptdtype)
    b = torch.randn(n, n, device=device, dtype=ptdtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    result = benchmark(argv)
    print(f"{result['ms_per_iter']:.1f} ms/iter (median of {result['bench_iters']}), {result['tok_per_s']:,.0f} tok/s, "
          f"MFU {100 * result['mfu']:.1f}% of {result['peak_tflops']:.3f} TFLOP/s measured, "
          f"peak memory {result['peak_mem_mb']:.0f} MB")
    print(json.dumps(result))


def make_step(argv):
    """Parse argv like train.py (plus BenchConfig); build the model, optimizer and batches.

    Returns (step, info): step() runs one training step (forward, backward, clip, optimizer) and
    waits for the device; info holds the configs, model and device facts that benchmark() reports.
    compare.py --bench=True alternates the steps of two of these in one process.
    """
    (bcfg, cfg, mcfg), given = configure([BenchConfig(), TrainConfig(), MAIN_JOB_MODEL], argv, description=__doc__)
    check_train_config(cfg)
    device, device_type, dtype, ctx = setup_device(cfg)

    if bcfg.data == "dataset":
        data_dir = cfg.data_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", cfg.dataset)
        meta = load_meta(data_dir, cfg.dataset)
        if "vocab_size" not in given:
            mcfg = replace(mcfg, vocab_size=meta["vocab_size"])
        batches = Batches(data_dir, meta, mcfg.block_size, cfg.batch_size, device, cfg.respect_doc_boundaries,
                          mcfg.prefix_lm)
        gen = torch.Generator().manual_seed(cfg.seed)
        get_batch = lambda: batches.get("train", gen)  # noqa: E731
    else:
        g = np.random.default_rng(cfg.seed)
        def get_batch():
            x = torch.from_numpy(g.integers(0, mcfg.vocab_size, (cfg.batch_size, mcfg.block_size + 1)))
            x = x.to(device)
            prefix = torch.full((cfg.batch_size,), mcfg.block_size // 2, device=device) if mcfg.prefix_lm else None
            return x[:, :-1], x[:, 1:], prefix

    torch.manual_seed(cfg.seed)
    model = GPT(mcfg).to(device)
    optimizer = make_optimizer(model, cfg, device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))
    step_model = torch.compile(model) if cfg.compile else model

    def step():
        loss = train_step(step_model, optimizer, scaler, get_batch, cfg.gradient_accumulation_steps, ctx, cfg.grad_clip)
        loss.item()  # wait for the device
        return loss

    info = dict(bcfg=bcfg, cfg=cfg, model=model, device=device, device_type=device_type, dtype=dtype,
                tokens_per_iter=cfg.gradient_accumulation_steps * cfg.batch_size * mcfg.block_size)
    return step, info


def benchmark(argv):
    """Time make_step's step for bench_iters iterations after warm-up, and return the numbers."""
    step, info = make_step(argv)
    bcfg, model, device, device_type, dtype = (info[k] for k in ("bcfg", "model", "device", "device_type", "dtype"))
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tokens_per_iter = info["tokens_per_iter"]
    for _ in range(bcfg.warmup_iters_bench):
        step()
    sync(device)
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(bcfg.bench_iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))

    peak = bcfg.peak_tflops * 1e12 if bcfg.peak_tflops > 0 else measure_peak_flops(device, ptdtype)
    if device_type == "cuda":
        peak_mem_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mem_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    result = {"ms_per_iter": round(dt * 1000, 3), "tok_per_s": round(tokens_per_iter / dt, 1),
              "mfu": round(model.estimate_mfu(tokens_per_iter, dt, peak), 4), "peak_mem_mb": round(peak_mem_mb, 1),
              "peak_tflops": round(peak / 1e12, 3), "params_m": round(model.get_num_params() / 1e6, 3),
              "tokens_per_iter": tokens_per_iter, "device": device, "dtype": dtype, "bench_iters": bcfg.bench_iters}
    return result


if __name__ == "__main__":
    main_guard(main)
