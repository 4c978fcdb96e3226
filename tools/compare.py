"""
Compare runs: train a baseline and each variant for the same iterations over several seeds, and say
whether each difference is larger than the seed noise.

    python tools/compare.py config/sweeps/compare_shakespeare_char.py
    python tools/compare.py config/sweeps/compare_shakespeare_char.py --seeds="(0,)" --only="('shared_qk',)"
    python tools/compare.py config/sweeps/compare_shakespeare_char.py --workers=2             # 2 runs at once
    python tools/compare.py config/sweeps/compare_shakespeare_char.py --executor=slurm --partition=gpu --gpus=1

A compare config names the experiment, the seeds, the train.py keys every run shares (`common`) and
each run's own keys (`runs`, the first one or `baseline` is the reference). Each run is a train.py
process writing out-compare/<name>/<run>_s<seed>/; finished runs are reused, not retrained, when the
same config is asked again. Runs train `workers` at a time as submitit jobs: processes here, each
with cores / workers threads (or one GPU each), or an array job on a SLURM cluster (docs/variants.md,
"Parallel workers and SLURM"). A run whose process crashed or was killed is tried again, then reported; the others
finish, and the results cover them. The results go beside them, to out-compare/<name>/: results.md,
results.json, val_loss.png (val loss over iterations, mean over seeds) and position_loss.png (final
loss per position, mean over seeds), each with every run minus the baseline.

With --budgets=1000,2000,4000 it draws budget curves instead: each run and seed trains once to the longest
budget with the warmup-stable-decay schedule (lr_schedule=wsd), saving a checkpoint where each shorter
budget's cooldown starts, and each shorter budget is a cooldown branched from it (--resume_from): the same
model, to the bit, as a WSD run of that budget from scratch. The results give every run's loss at every
budget and its compute multiplier against the baseline (helpers/multiplier.py) with a bootstrap interval,
in budgets.md, budgets.json, budget_loss.png and multiplier.png (docs/variants.md, "Budget curves").

When the common keys set target_val_acc (config/sweeps/compare_grokking.py), runs stop at it, and the
results also give each seed's iterations to it (or that it was not reached within max_iters), and
accuracy.png draws every seed's train and val accuracy.
"""

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import numpy as np
import torch

from helpers.checkpoint import atomic_write_text, read_metrics
from helpers.config import TrainConfig, UserError, check_log_to, configure, cooldown_start, main_guard
from helpers.launch import cores, train_in_workers
from helpers.multiplier import bootstrap_multiplier, describe
from helpers.plotting import plot_comparison, position_curve
from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class CompareConfig:
    name: str = ""  # experiment name: runs and results go to <out_root>/<name>/
    seeds: tuple[int, ...] = (0, 1, 2)  # every run is trained once per seed
    common: dict = field(default_factory=dict)  # train.py keys shared by every run
    runs: dict = field(default_factory=dict)  # {run name: {train.py keys}}; the first is the baseline
    baseline: str = ""  # name of the reference run ("" = the first in runs)
    only: tuple[str, ...] = ()  # train and report only these runs (plus the baseline)
    out_root: str = "out-compare"  # where experiments go
    bench: bool = False  # instead of training, time every run's config with bench.py (bench.md)
    workers: int = 0  # runs at once (threads = cores / workers); 0: one per GPU, else one per core (speed.md)
    retries: int = 1  # a run whose process crashed or was killed is tried again this many times, then reported
    executor: str = "local"  # "local": worker processes here; "slurm": an array job on a SLURM cluster
    partition: str = ""  # slurm: the partition ("" = the cluster's default)
    account: str = ""  # slurm: the account to charge ("" = yours by default)
    time_min: int = 24 * 60  # a run's time limit in minutes (slurm: --time); a run past it is killed, then retried
    gpus: int = 0  # slurm: GPUs per run
    cpus: int = 1  # slurm: CPUs per run (its threads)
    log_to: str = ""  # every run also logs to "tensorboard", "wandb" or "trackio": the project is name, the group each run
    budgets: tuple[int, ...] = ()  # budget curves: one wsd run per run and seed to the longest, a cooldown branch per shorter one


def run_dir(c, run, seed):
    return os.path.join(c.out_root, c.name, f"{run}_s{seed}")


def run_keys(c, run, seed):
    """A run's train.py keys: the common keys, the run's keys, the seed. With a tracker (log_to, here or
    in the keys) the sweep's name is its project and the run its group, so a variant's seeds sit together."""
    keys = {**c.common, **c.runs[run], "seed": seed, **({"log_to": c.log_to} if c.log_to else {})}
    if keys.get("log_to"):
        keys = {"log_project": c.name, "log_group": run, **keys}  # (unless the keys name their own)
    return keys


def run_args(c, run, seed):
    """A run's train.py arguments (run_keys as --key=value)."""
    return [f"--{k}={v}" for k, v in run_keys(c, run, seed).items()]


def default_workers(gpus):
    """One run per GPU; on CPUs one single-threaded run per core: 1.32x more runs per hour than one
    run at a time with every core, at the recipe's size (tools/bench_sweep.py; docs/speed.md, "Sweeps")."""
    return gpus or cores()


def check_workers(c):
    """The worker and cluster keys, before anything runs."""
    if c.executor not in ("local", "slurm"):
        raise UserError(f"executor must be 'local' (worker processes here) or 'slurm', got {c.executor!r}")
    for key, least in (("workers", 0), ("retries", 0), ("time_min", 1), ("gpus", 0), ("cpus", 1)):
        if getattr(c, key) < least:
            raise UserError(f"{key} must be >= {least}, got {getattr(c, key)}")
    given = [k for k in ("partition", "account", "gpus", "cpus") if getattr(c, k) != getattr(CompareConfig, k)]
    if c.executor == "local" and given:
        raise UserError(f"{', '.join(given)} are SLURM options: add --executor=slurm (locally every visible GPU "
                        f"gets one run, and each worker cores / workers threads)")


def mean_std(xs):
    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan"))


def late_change(rows):
    """Val loss at the last eval minus at the eval at 80% of its iterations (None if there is none):
    a run has converged when this is within the seed noise."""
    at = next((r for r in rows if r["iter"] == round(0.8 * rows[-1]["iter"])), None)
    return None if at is None or at is rows[-1] else rows[-1]["val_loss"] - at["val_loss"]


def summarize(c, metrics):
    """Per run: parameters, ms/iter, final val loss and bits/byte (mean, std), difference from the baseline."""
    base = c.baseline or next(iter(c.runs))
    results = {}
    for run, per_seed in metrics.items():
        final = [rows[-1] for rows in per_seed]
        config = json.load(open(os.path.join(run_dir(c, run, c.seeds[0]), "config.json")))
        loss, loss_std = mean_std([r["val_loss"] for r in final])
        bpb, bpb_std = mean_std([r["val_bpb"] for r in final])
        ms = [r["ms_per_iter"] for rows in per_seed for r in rows if r.get("ms_per_iter")]
        results[run] = {"params": GPT(GPTConfig(**config["model"])).get_num_params(), "iters": final[0]["iter"],
                        "ms_per_iter": float(np.median(ms)) if ms else None, "val_loss": loss, "val_loss_std": loss_std,
                        "val_bpb": bpb, "val_bpb_std": bpb_std, "seeds": len(final),
                        "val_losses": [r["val_loss"] for r in final], "keys": {**c.common, **c.runs[run]}}
        late = [late_change(rows) for rows in per_seed]  # still falling at the end? (None: no eval at 80%)
        results[run]["late_change"], results[run]["late_change_std"] = \
            mean_std(late) if None not in late else (None, None)
    target = c.common.get("target_val_acc")
    for run, per_seed in metrics.items():
        if target:  # the first eval at or above the target, per seed; None: not within max_iters
            steps = [next((r["iter"] for r in rows if r["val_acc"] >= target), None) for rows in per_seed]
            reached = [s for s in steps if s is not None]
            results[run]["steps_to_target"] = steps
            results[run]["final_val_accs"] = [rows[-1]["val_acc"] for rows in per_seed]
            results[run]["steps_to_target_mean"], results[run]["steps_to_target_std"] = \
                mean_std(reached) if reached else (None, None)
    b = results[base]
    for run, r in results.items():
        r["diff"] = r["val_loss"] - b["val_loss"]
        # the difference's standard error from the two runs' seed spreads; "real" beyond 2 of them
        se = math.sqrt(r["val_loss_std"] ** 2 / r["seeds"] + b["val_loss_std"] ** 2 / b["seeds"])
        r["significant"] = None if math.isnan(se) or run == base else bool(abs(r["diff"]) > 2 * se)
    return base, results


def write_results(c, base, results, metrics, results_dir, seconds):
    fmt = lambda v, s: f"{v:.4f} ± {s:.4f}" if not math.isnan(s) else f"{v:.4f}"  # noqa: E731
    target = c.common.get("target_val_acc")
    iters = (f"up to {c.common.get('max_iters')} iterations each (a run stops at val acc ≥ {target}), the "
             f"loss at each run's last eval" if target else f"{next(iter(results.values()))['iters']} iterations each"
             if len({r["iters"] for r in results.values()}) == 1 else "iterations as each run's keys say")
    lines = [f"# compare_{c.name}", "",
             f"{len(results)} runs x {len(c.seeds)} seeds ({', '.join(map(str, c.seeds))}), "
             f"{iters}; baseline `{base}`. "
             f"A difference is marked real when it exceeds twice its standard error over seeds.", "",
             "Every run's train.py keys: " + ", ".join(f"`{k}={v}`" for k, v in c.common.items())
             + ", `seed`, and its own keys below, which win (results.json has each run's resolved keys).", "",
             "| run | own keys | params | ms/iter | val loss | val bits/byte | diff vs baseline | beyond seed noise? "
             "| val loss change over the last 20% of iterations |", "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for run, r in results.items():
        real = {None: "n/a", True: "yes", False: "no"}[r["significant"]] if run != base else "(baseline)"
        ms = f"{r['ms_per_iter']:.1f}" if r["ms_per_iter"] else "-"
        own = ", ".join(f"`{k}={v}`" for k, v in c.runs[run].items()) or "-"
        lines.append(f"| {run} | {own} | {r['params']:,} | {ms} | {fmt(r['val_loss'], r['val_loss_std'])} | "
                     f"{fmt(r['val_bpb'], r['val_bpb_std'])} | {r['diff']:+.4f} | {real} | "
                     + ("-" if r["late_change"] is None else fmt(r["late_change"], r["late_change_std"])) + " |")
    if target:
        lines += ["", f"Iterations to val acc ≥ {target} (the first eval at or above it; runs stop there), "
                      f"within {c.common.get('max_iters')} iterations:", "",
                  "| run | reached | iterations, mean ± std over the seeds that reached it | per seed |",
                  "|---|---:|---:|---|"]
        for run, r in results.items():
            steps = r["steps_to_target"]
            n = sum(s is not None for s in steps)
            mean = "-" if not n else f"{r['steps_to_target_mean']:.0f}" + (
                f" ± {r['steps_to_target_std']:.0f}" if n > 1 else "")
            each = ", ".join("not reached" if s is None else str(s) for s in steps)
            lines.append(f"| {run} | {n} of {len(steps)} | {mean} | {each} |")
    lines += ["", f"Training time of these runs, in all: {seconds / 60:.1f} min (one train.py process each)."]
    os.makedirs(results_dir, exist_ok=True)
    atomic_write_text(os.path.join(results_dir, "results.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(results_dir, "results.json"),
                      json.dumps({"baseline": base, "seeds": list(c.seeds), "runs": results}, indent=1))
    print("\n".join(lines))
    paths = plot_overlays(c, metrics, base, results_dir)
    if target:
        paths.append(plot_accuracy(c, metrics, base, os.path.join(results_dir, "accuracy.png")))
    return paths


def plot_overlays(c, metrics, base, results_dir):
    """val_loss.png (over iterations) and position_loss.png (at the last eval), means over seeds."""
    val, pos = {}, {}
    for run, per_seed in metrics.items():
        n = min(len(rows) for rows in per_seed)
        val[run] = ([r["iter"] for r in per_seed[0][:n]], np.mean([[r["val_loss"] for r in rows[:n]] for rows in per_seed], 0))
        with warnings.catch_warnings():  # a position no seed scores stays NaN, without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            y = np.nanmean([position_curve(rows[-1]) for rows in per_seed], axis=0)
        pos[run] = (range(len(y)), y)
    seeds = f"seed {c.seeds[0]}" if len(c.seeds) == 1 else f"mean over seeds {', '.join(map(str, c.seeds))}"
    return [plot_comparison(val, base, os.path.join(results_dir, "val_loss.png"), "iteration", "val loss (nats)",
                            f"compare {c.name}: val loss, {seeds}"),
            plot_comparison(pos, base, os.path.join(results_dir, "position_loss.png"), "position in context",
                            "final val loss (nats)", f"compare {c.name}: loss at each position, {seeds}", skip=0.1)]


def plot_accuracy(c, metrics, base, path):
    """Train (dashed) and val (solid) accuracy over iterations, every seed, one colour per run."""
    import matplotlib.pyplot as plt

    from helpers.plotting import distinct_styles, save

    fig, ax = plt.subplots(figsize=(9, 5))
    colors = dict(zip([r for r in metrics if r != base], [c_ for c_, _ in distinct_styles(len(metrics) - 1)]))
    colors[base] = "black"
    for run, per_seed in metrics.items():
        for i, rows in enumerate(per_seed):
            iters = [r["iter"] for r in rows]
            ax.plot(iters, [r["val_acc"] for r in rows], color=colors[run], lw=1.3, label=run if i == 0 else None)
            ax.plot(iters, [r["train_acc"] for r in rows], color=colors[run], lw=0.8, ls="--")
    ax.axhline(c.common["target_val_acc"], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="iteration", ylabel="accuracy", ylim=(0, 1.02),
           title=f"compare {c.name}: val (solid) and train (dashed) accuracy, seeds {', '.join(map(str, c.seeds))}")
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, path)


# --- budget curves: one WSD run to the longest budget, a cooldown branched off it for each shorter one ---

def budget_dir(c, run, seed, budget):
    return os.path.join(c.out_root, c.name, f"{run}_s{seed}_wsd{budget}")


def budget_pieces(c, run, seed):
    """A run's pieces at one seed: (trunk folder, its keys, {branch folder: its keys}). The trunk trains to the
    longest budget with lr_schedule=wsd and saves ckpt_<i>.pt where each shorter budget's cooldown starts; a
    branch continues that checkpoint exactly (init_from=resume, resume_from) and cools down to its budget."""
    keys = {**run_keys(c, run, seed), "lr_schedule": "wsd"}
    frac = keys.get("cooldown_frac", TrainConfig.cooldown_frac)
    longest, shorter = c.budgets[-1], c.budgets[:-1]
    starts = {b: cooldown_start(TrainConfig(max_iters=b, cooldown_frac=frac)) for b in shorter}
    trunk = budget_dir(c, run, seed, longest)
    branches = {budget_dir(c, run, seed, b): {**keys, "max_iters": b, "init_from": "resume",
                                              "resume_from": os.path.join(trunk, f"ckpt_{starts[b]}.pt")}
                for b in shorter}
    return trunk, {**keys, "max_iters": longest, "save_at": tuple(starts.values())}, branches


def check_budgets(c):
    """Budgets: increasing, at least two, each shorter one's cooldown starting after the warmup and before the
    longest run's own cooldown (a branch starts where that run's learning rate is constant)."""
    if list(c.budgets) != sorted(set(c.budgets)) or len(c.budgets) < 2:
        raise UserError(f"budgets must be two or more increasing iteration counts, e.g. --budgets=1000,2000,4000; "
                        f"got {c.budgets}")
    keys = {**c.common, **{k: v for r in c.runs.values() for k, v in r.items()}}
    frac, warmup = keys.get("cooldown_frac", TrainConfig.cooldown_frac), keys.get("warmup_iters", TrainConfig.warmup_iters)
    starts = [cooldown_start(TrainConfig(max_iters=b, cooldown_frac=frac)) for b in c.budgets]
    if starts[0] < max(1, warmup):
        raise UserError(f"the cooldown of budget {c.budgets[0]} starts at iteration {starts[0]}, before the warmup "
                        f"({warmup} iterations) ends: raise the smallest budget or lower --warmup_iters")
    if max(starts[:-1]) > starts[-1]:
        raise UserError(f"the cooldown of budget {c.budgets[-2]} starts after that of {c.budgets[-1]} (iteration "
                        f"{starts[-1]}), so it cannot branch from its constant phase: space the budgets further apart")


def pieces_steps(c, run):
    """Optimizer steps of a run's pieces at one seed (the trunk, then each branch's cooldown), and of separate runs."""
    frac = {**c.common, **c.runs[run]}.get("cooldown_frac", TrainConfig.cooldown_frac)
    cooldowns = [b - cooldown_start(TrainConfig(max_iters=b, cooldown_frac=frac)) for b in c.budgets[:-1]]
    return c.budgets[-1] + sum(cooldowns), sum(c.budgets)


def train_budgets(c, results_dir, workers, gpus, slurm):
    """Train every trunk, then every branch whose trunk finished; returns ({folder: seconds}, {folder: error})."""
    trunks, branches = {}, {}
    for run in c.runs:
        for seed in c.seeds:
            trunk, keys, mine = budget_pieces(c, run, seed)
            trunks[trunk] = [f"--{k}={v}" for k, v in keys.items()]
            branches.update({d: (trunk, [f"--{k}={v}" for k, v in a.items()]) for d, a in mine.items()})
    folder = os.path.join(results_dir, "submitit")
    seconds, failed = train_in_workers(trunks, workers, gpus, c.executor, folder, c.retries, c.time_min, slurm)
    ready = {d: args for d, (trunk, args) in branches.items() if trunk in seconds}
    more, failed_more = train_in_workers(ready, workers, gpus, c.executor, folder, c.retries, c.time_min, slurm)
    failed.update(failed_more)
    failed.update({d: f"its trunk {trunk} did not train" for d, (trunk, _) in branches.items() if d not in ready})
    return {**seconds, **more}, failed


def final_loss(out_dir, budget):
    """The val loss of a piece's last eval, which is at its budget."""
    last = read_metrics(out_dir)[-1]
    assert last["iter"] == budget, f"{out_dir} ended at {last['iter']}, not {budget}"
    return last["val_loss"]


def summarize_budgets(c, base, done, seconds, speed):
    """Per run: the loss at every budget (per seed, mean, std, difference from the baseline) and the multiplier."""
    curves = {run: np.array([[final_loss(budget_dir(c, run, s, b), b) for b in c.budgets] for s in c.seeds])
              for run in done}
    results = {}
    for run, curve in curves.items():
        wsd, cosine = pieces_steps(c, run)
        r = {"keys": {**c.common, **c.runs[run]}, "val_losses": curve.tolist(), "steps": wsd * len(c.seeds),
             "cosine_steps": cosine * len(c.seeds),
             "seconds": sum(seconds[budget_dir(c, run, s, b)] for s in c.seeds for b in c.budgets),
             "ms_per_iter": speed.get(run), "budgets": {}}
        for j, b in enumerate(c.budgets):
            mean, std = mean_std(curve[:, j])
            base_mean, base_std = mean_std(curves[base][:, j])
            se = math.sqrt(std ** 2 / len(c.seeds) + base_std ** 2 / len(c.seeds))
            r["budgets"][b] = {"val_loss": mean, "val_loss_std": std, "diff": mean - base_mean,
                               "significant": None if run == base or math.isnan(se) else bool(abs(mean - base_mean) > 2 * se)}
        for m in bootstrap_multiplier(c.budgets, curves[base], curve):
            r["budgets"][m.pop("budget")]["multiplier"] = m
        results[run] = r
    return results


def bench_speed(results_dir):
    """{run: (ms/iter, x baseline)} from bench.json (compare.py --bench=True), or {} before it was run."""
    path = os.path.join(results_dir, "bench.json")
    return {r: tuple(v) for r, v in json.load(open(path)).items()} if os.path.exists(path) else {}


def write_budgets(c, base, results, results_dir):
    """budgets.md, budgets.json, budget_loss.png and multiplier.png."""
    fmt = lambda v, s: f"{v:.4f} ± {s:.4f}" if not math.isnan(s) else f"{v:.4f}"  # noqa: E731
    budgets = ", ".join(f"{b:,}" for b in c.budgets)
    lines = [f"# compare_{c.name}: budget curves", "",
             f"{len(results)} runs x {len(c.seeds)} seeds ({', '.join(map(str, c.seeds))}) at budgets {budgets}, "
             f"each budget a WSD run (lr_schedule=wsd) cooled down to it; baseline `{base}`. Val loss, mean ± std "
             f"over seeds, and the difference from the baseline (* beyond twice its standard error):", "",
             "| run | " + " | ".join(f"{b:,}" for b in c.budgets) + " |", "|---|" + "---:|" * len(c.budgets)]
    for run, r in results.items():
        cells = [fmt(v["val_loss"], v["val_loss_std"]) + ("" if run == base else f" ({v['diff']:+.4f}"
                 + ("*" if v["significant"] else "") + ")") for v in r["budgets"].values()]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    lines += ["", "Compute multiplier: the baseline budget that reaches the run's mean loss at each budget, divided "
                  "by that budget (log-linear between measured budgets, never beyond them: > and < mark the edge), "
                  "and a 90% interval from resampling seeds. ms/iter and x baseline are tools/compare.py "
                  "--bench=True's (bench.json; - before it is run); per wall-clock multiplies by 1 / x baseline.", "",
              "| run | ms/iter | x baseline | " + " | ".join(f"at {b:,}" for b in c.budgets) + " |",
              "|---|---:|---:|" + "---|" * len(c.budgets)]
    for run, r in results.items():
        if run == base:
            continue
        ms, ratio = r["ms_per_iter"] or (None, None)
        cells = [f"{describe(m['value'], m['mark'])} [{describe(m['low'], m['low_mark'])}, "
                 f"{describe(m['high'], m['high_mark'])}]" for m in (v["multiplier"] for v in r["budgets"].values())]
        lines.append(f"| {run} | {'-' if ms is None else f'{ms:.1f}'} | {'-' if ratio is None else f'{ratio:.2f}'} | "
                     + " | ".join(cells) + " |")
    steps = sum(r["steps"] for r in results.values())
    cosine = sum(r["cosine_steps"] for r in results.values())
    minutes = sum(r["seconds"] for r in results.values()) / 60
    lines += ["", f"Cost: {steps:,} optimizer steps, {minutes:.1f} min of training processes; separate cosine runs "
                  f"at each budget would take {cosine:,} steps ({steps / cosine:.0%} of that here)."]
    os.makedirs(results_dir, exist_ok=True)
    atomic_write_text(os.path.join(results_dir, "budgets.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(results_dir, "budgets.json"), json.dumps(
        {"baseline": base, "seeds": list(c.seeds), "budgets": list(c.budgets), "runs": results}, indent=1))
    print("\n".join(lines))
    loss = {run: (c.budgets, [v["val_loss"] for v in r["budgets"].values()]) for run, r in results.items()}
    return [plot_comparison(loss, base, os.path.join(results_dir, "budget_loss.png"), "budget (iterations)",
                            "final val loss (nats)", f"compare {c.name}: val loss at each budget (WSD), mean over "
                            f"seeds", skip=0.0),
            plot_multipliers(c, base, results, os.path.join(results_dir, "multiplier.png"))]


def plot_multipliers(c, base, results, path):
    """Multiplier against budget, one line per run with its interval shaded; log budgets, 1 = the baseline. A value
    beyond the measured budgets is an open triangle at its bound (^: at least, v: at most), off the line."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from helpers.plotting import distinct_styles, save, wrap

    fig, ax = plt.subplots(figsize=(8, 5))
    runs = [r for r in results if r != base]
    for run, (color, ls) in zip(runs, distinct_styles(len(runs))):
        m = [v["multiplier"] for v in results[run]["budgets"].values()]
        ax.plot(c.budgets, [np.nan if x["mark"] else x["value"] for x in m], color=color, ls=ls, marker="o", label=run)
        ax.fill_between(c.budgets, [x["low"] for x in m], [x["high"] for x in m], color=color, alpha=0.15)
        for b, x in zip(c.budgets, m):
            if x["mark"]:
                ax.plot(b, x["value"], marker="^" if x["mark"] == ">" else "v", color=color, ms=10, mfc="none")
    ax.axhline(1, color="black", lw=1.5)
    ax.set(xscale="log", xticks=c.budgets, xlabel="budget (iterations)",
           ylabel="compute multiplier (baseline steps / steps)",
           title=wrap(f"compare {c.name}: multiplier against {base}, 90% interval over seeds shaded, "
                      f"open triangles: beyond the measured budgets (^ at least, v at most)", 70))
    ax.xaxis.set_major_formatter(ScalarFormatter())  # the budgets as plain numbers on the log axis
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)
    return save(fig, path)


def bench_runs(c, results_dir, rounds=10, steps=5):
    """ms/iter of every run's model and batches (bench.py's training step), relative to the baseline.

    Each run is timed in one process beside a fresh baseline, alternating: `rounds` rounds of
    `steps` steps of each, and the ratio is the median over rounds of (run's median step / the
    baseline's in that round). A shared machine's speed drifts by ±15% over minutes; alternating
    every few steps keeps that drift out of the ratios.
    """
    from tools import bench

    base = c.baseline or next(iter(c.runs))
    argv = lambda run: [f"--{k}={v}" for k, v in {**c.common, **c.runs[run]}.items()] + ["--data=dataset"]  # noqa: E731

    def timed(step):
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    speed = {}
    lines = [f"# compare_{c.name}: speed", "",
             f"The training step of bench.py on the run's data, alternating with a baseline in one process: "
             f"{rounds} rounds of {steps} steps each (after {steps} warm-up steps); ms/iter is the run's median "
             f"step, the ratio the median over rounds of run / baseline in the same round (the baseline's own row "
             f"is against a second copy of itself: the noise floor).", "",
             "| run | ms/iter | x baseline | tok/s |", "|---|---:|---:|---:|"]
    for run in c.runs:
        (base_step, _), (run_step, info) = bench.make_step(argv(base)), bench.make_step(argv(run))
        timed(base_step), timed(run_step)  # warm-up
        pairs = [(timed(base_step), timed(run_step)) for _ in range(rounds)]
        ms = float(np.median([r for _, r in pairs]))
        ratio = float(np.median([r / b for b, r in pairs]))
        lines.append(f"| {run} | {1000 * ms:.1f} | {ratio:.2f} | {info['tokens_per_iter'] / ms:,.0f} |")
        speed[run] = (1000 * ms, ratio)
        print(lines[-1], flush=True)
    os.makedirs(results_dir, exist_ok=True)
    atomic_write_text(os.path.join(results_dir, "bench.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(results_dir, "bench.json"), json.dumps(speed, indent=1))  # (budgets.md reads it)
    print("\n".join(lines))


def main(argv=None):
    (c,), _ = configure([CompareConfig()], argv, description=__doc__)
    if not c.name or not c.runs:
        raise UserError("a compare config needs a name and runs: see config/sweeps/compare_shakespeare_char.py")
    base = c.baseline or next(iter(c.runs))
    if base not in c.runs or any(r not in c.runs for r in c.only):
        unknown = [r for r in (base, *c.only) if r not in c.runs]
        raise UserError(f"unknown run(s) {', '.join(unknown)}; the config has {', '.join(c.runs)}")
    check_workers(c)
    check_log_to(c.log_to or c.common.get("log_to", ""))  # a missing tracker: one line before any run
    if c.only:
        c.runs = {r: v for r, v in c.runs.items() if r == base or r in c.only}
    results_dir = os.path.join(c.out_root, c.name)
    if c.bench:
        return bench_runs(c, results_dir)
    gpus = 0 if c.executor == "slurm" or c.common.get("device", "auto") == "cpu" else torch.cuda.device_count()
    slurm = dict(partition=c.partition, account=c.account, gpus=c.gpus, cpus=c.cpus)
    if c.budgets:
        return compare_budgets(c, base, results_dir, gpus, slurm)
    runs = {run_dir(c, run, seed): run_args(c, run, seed) for run in c.runs for seed in c.seeds}
    seconds, failed = train_in_workers(runs, c.workers or default_workers(gpus), gpus, c.executor,
                                       os.path.join(results_dir, "submitit"), c.retries, c.time_min, slurm)
    done = [run for run in c.runs if all(run_dir(c, run, s) in seconds for s in c.seeds)]  # every seed finished
    base_dirs = [run_dir(c, base, s) for s in c.seeds]
    if base not in done:
        raise UserError(f"the baseline did not train: {'; '.join(v for k, v in failed.items() if k in base_dirs)}")
    metrics = {run: [read_metrics(run_dir(c, run, s)) for s in c.seeds] for run in done}
    base, results = summarize(c, metrics)
    seconds = sum(seconds.values())
    for p in write_results(c, base, results, metrics, results_dir, seconds):
        print(f"wrote {p}")
    if failed:
        raise UserError(f"{len(failed)} run(s) failed and are not in the results: "
                        + "; ".join(f"{k}: {v}" for k, v in failed.items()) + ". Run the same command again "
                        "to train only them (finished runs are reused)")


def compare_budgets(c, base, results_dir, gpus, slurm):
    """main() for --budgets: train the pieces, then write the budget curves and multipliers."""
    check_budgets(c)
    seconds, failed = train_budgets(c, results_dir, c.workers or default_workers(gpus), gpus, slurm)
    done = [run for run in c.runs if all(budget_dir(c, run, s, b) in seconds for s in c.seeds for b in c.budgets)]
    if base not in done:
        raise UserError(f"the baseline did not train: {'; '.join(v for k, v in failed.items() if base in k)}")
    results = summarize_budgets(c, base, done, seconds, bench_speed(results_dir))
    for p in write_budgets(c, base, results, results_dir):
        print(f"wrote {p}")
    if failed:
        raise UserError(f"{len(failed)} piece(s) failed and are not in the results: "
                        + "; ".join(f"{k}: {v}" for k, v in failed.items()) + ". Run the same command again "
                        "to train only them (finished pieces are reused)")


if __name__ == "__main__":
    main_guard(main)
