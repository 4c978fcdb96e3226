"""
Benchmark training speed for any config: the same keys as train.py, plus a few of its own.

    python tools/bench.py config/train_shakespeare_char.py --device=cpu --block_size=64 --batch_size=12 \
        --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0
    python tools/bench.py config/train_gpt2.py --bench_iters=50            # on a GPU
    python tools/bench.py <the recipe's keys> --data=dataset --nanogpt=../nanoGPT   # side by side with nanoGPT

Times `train.train_step`, train.py's step (forward, backward, clip, AdamW or Muon + AdamW), for
bench_iters iterations after warmup_iters_bench, and prints ms/iter, tokens/s, MFU against a peak
measured here with a large matmul in the run's dtype (or --peak_tflops), and peak memory. The last
line is one JSON object.

With --nanogpt=DIR (a nanoGPT checkout) it instead alternates this repo's step with nanoGPT's, built
from DIR/model.py and its configure_optimizers, with nanoGPT's batch code and loop order, in one
process: rounds of bench_iters steps each, and the median ratio of the two times over the rounds.
One process means one machine state for both, and the same process settings (threads, malloc).
--compile=True compiles both models; add --nanogpt_eager=True to compile only this repo's, against
nanoGPT's CPU recipe as it is written (--compile=False).
"""

import importlib.util
import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

from helpers.config import MAIN_JOB_MODEL, TrainConfig, UserError, check_train_config, configure, main_guard
from helpers.data import Batches, dataset_dir, load_meta
from helpers.device import setup_device
from helpers.optim import make_optimizer
from model import GPT, GPTConfig
from train import train_step


@dataclass
class BenchConfig:
    bench_iters: int = 20  # timed iterations
    warmup_iters_bench: int = 5  # untimed iterations first (compile, allocator, caches)
    data: str = "random"  # "random": uniform random tokens; "dataset": batches from --dataset like train.py
    peak_tflops: float = 0.0  # the device's peak for MFU; 0 measures it with a matmul
    nanogpt: str = ""  # a nanoGPT checkout: alternate its training step with this repo's and print the ratio
    rounds: int = 10  # with nanogpt: rounds of bench_iters steps of each
    nanogpt_eager: bool = False  # with nanogpt and --compile=True: leave nanoGPT's model uncompiled, as its CPU recipe runs it


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
    step, info = make_step(argv)
    if info["bcfg"].nanogpt:
        result = versus_nanogpt(step, info)
        print(f"this repo {result['ms_per_iter']:.1f} ms/iter, nanoGPT {result['nanogpt_ms_per_iter']:.1f} ms/iter "
              f"(medians over {result['rounds']} alternating rounds of {result['bench_iters']} steps): "
              f"{result['speedup']:.3f}x nanoGPT's tokens/s "
              f"(quartiles {result['speedup_q1']:.3f}-{result['speedup_q3']:.3f})")
        print(json.dumps(result))
        return
    result = measure(step, info)
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
    if bcfg.nanogpt_eager and not (bcfg.nanogpt and cfg.compile):
        raise UserError("--nanogpt_eager=True only matters with --nanogpt=DIR and --compile=True: add them or drop it")
    device, device_type, dtype, ctx = setup_device(cfg)

    batches = None
    if bcfg.data == "dataset":
        data_dir = dataset_dir(cfg.dataset, cfg.data_dir)
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
        loss, _ = train_step(step_model, optimizer, scaler, get_batch, cfg.gradient_accumulation_steps, ctx,
                             cfg.grad_clip, grad_projection=cfg.grad_projection)
        loss.item()  # wait for the device
        return loss

    info = dict(bcfg=bcfg, cfg=cfg, mcfg=mcfg, model=model, batches=batches, device=device, device_type=device_type,
                dtype=dtype, ctx=ctx,
                tokens_per_iter=cfg.gradient_accumulation_steps * cfg.batch_size * mcfg.block_size)
    return step, info


NANOGPT_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")  # its GPTConfig


def nanogpt_step(path, info):
    """nanoGPT's training step for the same config, from its own model.py: its GPT, its AdamW
    (configure_optimizers: fused only on CUDA), its batch code (a fresh memmap and a Python loop of
    slices per batch) and its loop (next batch fetched between forward and backward, clip, step)."""
    cfg, mcfg, batches, device, device_type, dtype, ctx = (info[k] for k in (
        "cfg", "mcfg", "batches", "device", "device_type", "dtype", "ctx"))
    changed = [k for k, v in asdict(mcfg).items() if k not in NANOGPT_KEYS and v != getattr(GPTConfig(), k)]
    if changed or cfg.optimizer != "adamw":
        raise UserError(f"nanoGPT has only the baseline GPT and AdamW; drop {', '.join(changed) or 'optimizer'} "
                        f"to compare with it")
    if not os.path.exists(os.path.join(path, "model.py")):
        raise UserError(f"{path}/model.py not found: --nanogpt takes the directory of a nanoGPT checkout")
    spec = importlib.util.spec_from_file_location("nanogpt_model", os.path.join(path, "model.py"))
    ng = sys.modules["nanogpt_model"] = importlib.util.module_from_spec(spec)  # importlib's recipe
    spec.loader.exec_module(ng)
    torch.manual_seed(cfg.seed)
    model = ng.GPT(ng.GPTConfig(**{k: getattr(mcfg, k) for k in NANOGPT_KEYS})).to(device)
    model = torch.compile(model) if cfg.compile and not info["bcfg"].nanogpt_eager else model
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))
    B, T = cfg.batch_size, mcfg.block_size

    def get_batch():
        if batches is None:  # --data=random
            x = torch.randint(mcfg.vocab_size, (B, T + 1))
            return x[:, :-1].to(device), x[:, 1:].to(device)
        data = np.memmap(batches.paths["train"], dtype=batches.dtype, mode="r")
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        return x.to(device), y.to(device)

    X, Y = get_batch()

    def step():
        nonlocal X, Y
        for _ in range(cfg.gradient_accumulation_steps):
            with ctx:
                _, loss = model(X, Y)
                loss = loss / cfg.gradient_accumulation_steps
            X, Y = get_batch()
            scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # nanoGPT's log line, and a wait for the device

    return step


def versus_nanogpt(ours, info):
    """This repo's step and nanoGPT's, alternating in rounds (which goes first alternates too)."""
    bcfg = info["bcfg"]
    theirs = nanogpt_step(bcfg.nanogpt, info)

    def timed(step):
        t = time.perf_counter()
        for _ in range(bcfg.bench_iters):
            step()
        return (time.perf_counter() - t) / bcfg.bench_iters

    for _ in range(bcfg.warmup_iters_bench):
        ours(), theirs()
    rounds = []  # (ours, theirs) seconds per step
    for r in range(bcfg.rounds):
        if r % 2 == 0:
            a = timed(ours)
            rounds.append((a, timed(theirs)))
        else:
            b = timed(theirs)
            rounds.append((timed(ours), b))
    ratios = [b / a for a, b in rounds]
    return {"ms_per_iter": round(1000 * float(np.median([a for a, _ in rounds])), 3),
            "nanogpt_ms_per_iter": round(1000 * float(np.median([b for _, b in rounds])), 3),
            "speedup": round(float(np.median(ratios)), 4), "speedup_q1": round(float(np.percentile(ratios, 25)), 4),
            "speedup_q3": round(float(np.percentile(ratios, 75)), 4), "rounds": bcfg.rounds,
            "bench_iters": bcfg.bench_iters, "tokens_per_iter": info["tokens_per_iter"], "device": info["device"]}


def benchmark(argv):
    """measure() for train.py-style arguments."""
    return measure(*make_step(argv))


def measure(step, info):
    """Time make_step's step for bench_iters iterations after warm-up, and return the numbers."""
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
