"""
Runs per hour of a sweep: the same runs trained one at a time with every core (workers=1), and side
by side with the cores split between them (workers=N), alternating in one benchmark.

    python tools/bench_sweep.py config/sweeps/compare_shakespeare_char.py --steps=600 --rounds=4

Each round trains `runs_per_sweep` copies of the comparison's baseline (its common keys, `steps` iterations, its
cosine decayed over them, seeds 0, 1, ...) once per worker count, in an order that alternates from round
to round (1, N then N, 1), through compare.py's own launcher (helpers/launch.py: submitit jobs, a
fresh run folder each time, nothing reused). A sweep's wall time includes what a sweep pays: process
start, evals, the launcher. Runs per hour = runs / wall time; the speedup is the median over rounds
of (workers=1's wall time / workers=N's) in the same round, so a machine whose speed drifts over
minutes does not bias it. Writes <out>/bench_sweep.md.
"""

import os
import shutil
import time
from dataclasses import dataclass

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import numpy as np

from helpers.checkpoint import atomic_write_text
from helpers.config import UserError, configure, main_guard
from helpers.launch import cores, train_in_workers
from tools.compare import CompareConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class SweepBenchConfig:
    steps: int = 600  # iterations of each run (its cosine decays over them)
    rounds: int = 4  # rounds; each trains the runs once per worker count
    runs_per_sweep: int = 2  # runs in each sweep (seeds 0, 1, ...)
    parallel: int = 0  # the worker count compared with 1 (0: one per core)
    out: str = "out-bench-sweep"  # where the runs and bench_sweep.md go (the runs are deleted after each sweep)


def main(argv=None):
    (c, b), _ = configure([CompareConfig(), SweepBenchConfig()], argv, description=__doc__)
    if not c.common:
        raise UserError("give a compare config whose common keys are the runs' size, "
                        "e.g. config/sweeps/compare_shakespeare_char.py")
    n = b.parallel or cores()
    if b.steps < 1 or b.rounds < 1 or b.runs_per_sweep < 1 or n < 2:
        raise UserError(f"steps, rounds and runs_per_sweep must be >= 1 and parallel >= 2 (cores: {cores()}); "
                        f"got {b.steps}, {b.rounds}, {b.runs_per_sweep}, {n}")
    keys = {**c.common, "max_iters": b.steps, "lr_decay_iters": b.steps}
    walls = {1: [], n: []}
    for r in range(b.rounds):
        for workers in ((1, n) if r % 2 == 0 else (n, 1)):
            folder = os.path.join(b.out, f"round{r}_workers{workers}")
            runs = {os.path.join(folder, f"s{s}"): [f"--{k}={v}" for k, v in {**keys, "seed": s}.items()]
                    for s in range(b.runs_per_sweep)}
            t0 = time.time()
            _, failed = train_in_workers(runs, workers, folder=os.path.join(folder, "submitit"), retries=0)
            walls[workers].append(time.time() - t0)
            if failed:
                raise UserError(f"a benchmark run failed: {failed}")
            shutil.rmtree(folder)
            print(f"round {r}: workers={workers}: {walls[workers][-1]:.1f} s for {b.runs_per_sweep} runs", flush=True)
    per_hour = {w: [3600 * b.runs_per_sweep / t for t in ts] for w, ts in walls.items()}
    speedup = [one / many for one, many in zip(walls[1], walls[n])]
    size = ", ".join(f"{k}={keys[k]}" for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size")
                     if k in keys)
    lines = [f"# Sweep throughput: workers=1 against workers={n}", "",
             f"{b.runs_per_sweep} runs of {b.steps} iterations ({size}) per sweep, {cores()} cores; {b.rounds} rounds "
             f"alternating the order. workers=1: one run at a time with {cores()} threads; workers={n}: {n} "
             f"runs at once with {max(1, cores() // n)} thread(s) each.", "",
             "| workers | wall time per sweep (s), per round | runs per hour (median) |", "|---:|---|---:|"]
    for w in (1, n):
        lines.append(f"| {w} | {', '.join(f'{t:.1f}' for t in walls[w])} | {np.median(per_hour[w]):.0f} |")
    lines += ["", f"workers={n} trains {np.median(speedup):.2f}x the runs per hour of workers=1 (median over "
                  f"rounds of the same round's ratio; per round: {', '.join(f'{s:.2f}' for s in speedup)})."]
    os.makedirs(b.out, exist_ok=True)
    atomic_write_text(os.path.join(b.out, "bench_sweep.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main_guard(main)
