"""
The induction-head reproduction (Olsson et al. 2022, docs/induction.md): train a 1-layer and a 2-layer
attention-only model and a 2-layer full model, over several seeds, recording at every eval the
in-context-learning score and each head's induction score; then score every final model's heads on
repeated random tokens and draw all of it over tokens seen.

    python tools/induction.py config/sweeps/induction_synthetic.py         # random tokens with repeats: only induction helps
    python tools/induction.py config/sweeps/induction_shakespeare_char.py  # natural text
    python tools/induction.py config/sweeps/induction_synthetic.py --seeds="(0,)"   # one seed
    python tools/induction.py config/sweeps/induction_shakespeare_char.py --extra="{'max_iters': 40000, 'device': 'cuda'}"
    python tools/induction.py heads --out_dir=out-induction/synthetic/attn_only_2l_s0   # one checkpoint's head scores
    python tools/induction.py heads --out_dir=out-x --half=32 --batch=64 --plot_dir=plots/heads

The config names the experiment, the command that prepares its dataset (run when data/<dataset> is
missing), the seeds, the train.py keys every run shares and each run's own. Each run is a train.py
process writing <out_root>/<name>/<run>_s<seed>/ (finished runs are reused), with its final heads
scored into heads.json and heads.png there. The results go to <out_root>/<name>/: results.json (per
seed and mean ± std, and the command), results.md, training.png (ICL score, strongest induction head,
loss on the repeat of [A][A] over its first copy, and training loss over tokens seen) and heads_<run>.png (each run's final head scores, first seed).

`heads` scores the heads of one checkpoint, as the experiment scores each final model: on batches of
repeated random tokens [A][A] (helpers/induction.py), each head's previous-token, duplicate-token and
induction scores (mean attention on TransformerLens's detection patterns), and the model's loss on the
first and the repeated half. It writes heads.png (a heat map per score) and heads.json.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import numpy as np

from helpers.checkpoint import atomic_write_text, model_from_checkpoint, read_metrics, read_model
from helpers.config import UserError, configure, main_guard
from helpers.induction import head_scores
from helpers.launch import train_or_reuse
from helpers.plotting import distinct_styles, plot_head_scores, plt, run_title, save, wrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -----------------------------------------------------------------------------
# Head scores of one model: `heads`, and each run's final model in the experiment

@dataclass
class HeadsConfig:
    out_dir: str = "out-induction/synthetic/attn_only_2l_s0"  # run folder holding ckpt.pt
    init_from: str = "resume"  # "resume": out_dir's checkpoint; or a checkpoint file, run folder, gpt2, HF dir
    plot_dir: str = ""  # where heads.png and heads.json go; "" means plots/heads
    half: int = 0  # tokens in A; 0: block_size // 2
    batch: int = 32  # [A][A] sequences scored
    seed: int = 0  # seeds the random tokens
    device: str = "cpu"  # "cpu", "cuda", ...


def score_run(model, vocab_size, cfg, title, plot_dir):
    """Score model's heads, write heads.json and heads.png into plot_dir; returns (scores, paths)."""
    if cfg.half < 0 or 2 * cfg.half > model.config.block_size:
        raise UserError(f"half must be 1..{model.config.block_size // 2} (two copies fit in the context), "
                        f"or 0 for that maximum; got {cfg.half}")
    if cfg.batch < 1:
        raise UserError(f"batch must be >= 1, got {cfg.batch}")
    scores = head_scores(model, vocab_size, cfg.half or None, cfg.batch, cfg.seed)
    os.makedirs(plot_dir, exist_ok=True)
    path_json = os.path.join(plot_dir, "heads.json")
    atomic_write_text(path_json, json.dumps({"half": cfg.half or model.config.block_size // 2, "batch": cfg.batch,
                                             "seed": cfg.seed, **scores}, indent=1))
    loss = f"loss on A {scores['first_half_loss']:.3f}, on its repeat {scores['repeat_loss']:.3f}"
    path_png = plot_head_scores(scores, os.path.join(plot_dir, "heads.png"),
                                f"{title}\nhead scores on repeated random tokens [A][A]; {loss}")
    return scores, [path_png, path_json]


def heads(argv):
    """`heads`: score one checkpoint's heads on [A][A], write heads.png and heads.json."""
    (cfg,), _ = configure([HeadsConfig()], argv, description=__doc__)
    ckpt = read_model(cfg.init_from, cfg.out_dir)
    model = model_from_checkpoint(ckpt).to(cfg.device)
    vocab = ckpt["meta"]["vocab_size"] if ckpt.get("meta") else model.config.vocab_size  # the tokenizer's ids
    title = run_title(cfg.out_dir) if cfg.init_from == "resume" else cfg.init_from
    scores, paths = score_run(model, vocab, cfg, title, cfg.plot_dir or os.path.join(ROOT, "plots", "heads"))
    best = max((v, i, h) for i, row in enumerate(scores["induction"]) for h, v in enumerate(row))
    print(f"strongest induction head: layer {best[1]} head {best[2]}, score {best[0]:.3f}; "
          f"loss on A {scores['first_half_loss']:.3f}, on its repeat {scores['repeat_loss']:.3f}")
    for p in paths:
        print(f"wrote {p}")


# -----------------------------------------------------------------------------
# The experiment: train the runs over seeds, score them, draw it over tokens seen

@dataclass
class InductionConfig:
    name: str = ""  # experiment name: runs and results go to <out_root>/<name>/
    prepare: str = ""  # the prepare/ command (arguments after `python`) that writes data/<dataset>
    seeds: tuple[int, ...] = (0, 1, 2)  # every run is trained once per seed
    common: dict = field(default_factory=dict)  # train.py keys shared by every run
    runs: dict = field(default_factory=dict)  # {run name: {train.py keys}}
    extra: dict = field(default_factory=dict)  # train.py keys over common's, e.g. --extra="{'max_iters': 40000}"
    half: int = 0  # tokens in A when scoring the final heads on [A][A]; 0: block_size // 2
    out_root: str = "out-induction"  # where experiments go


def run_dir(c, run, seed):
    return os.path.join(ROOT, c.out_root, c.name, f"{run}_s{seed}")


def prepare_data(c):
    """Run the config's prepare command when its dataset (data_dir, or data/<dataset>) is not there yet."""
    path = c.common.get("data_dir") or os.path.join(ROOT, "data", c.common.get("dataset", ""))
    if os.path.exists(os.path.join(path, "meta.json")) or not c.prepare:
        return
    print(f"preparing {path}: python {c.prepare}", flush=True)
    r = subprocess.run([sys.executable, *shlex.split(c.prepare)], cwd=ROOT)
    if r.returncode:
        raise UserError(f"`python {c.prepare}` failed (exit {r.returncode}); see its output above")


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else None)


def max_induction(row):
    """The strongest head's induction score in a metrics row (None without head_scores)."""
    h = row.get("head_scores")
    return float(np.max(h["induction"])) if h else None


def repeat_ratio(row):
    """Loss on the repeat of [A][A] over the loss on A in a metrics row (None without head_scores)."""
    h = row.get("head_scores")
    return h["repeat_loss"] / h["first_half_loss"] if h else None


def formation(rows):
    """When in-context copying forms, in tokens seen: the first eval where the strongest induction score
    reaches half of its final value (None if it stays under 0.1), where the loss on the repeat of [A][A]
    falls below half that on A (None if never), and the ICL score's steepest drop between two evals."""
    ind = [(r["tokens"], max_induction(r)) for r in rows if max_induction(r) is not None]
    final = ind[-1][1] if ind else 0.0
    rise = next((t for t, v in ind if v >= final / 2), None) if final >= 0.1 else None
    halved = next((r["tokens"] for r in rows if (repeat_ratio(r) or 1.0) < 0.5), None)
    icl = [(r["tokens"], r["icl_score"]) for r in rows if r.get("icl_score") is not None]
    drops = [(b[1] - a[1], b[0]) for a, b in zip(icl, icl[1:])]
    steepest = min(drops) if drops else (None, None)
    return {"induction_rise_tokens": rise, "repeat_halved_tokens": halved, "icl_drop_tokens": steepest[1],
            "icl_drop": steepest[0]}


def one_seed(c, run, seed):
    """Train (or reuse) one run, score its final heads; its numbers for results.json."""
    keys = {**c.common, **c.extra, **c.runs[run], "seed": seed}
    out = run_dir(c, run, seed)
    seconds = train_or_reuse(out, [f"--{k}={v}" for k, v in keys.items()])
    rows = read_metrics(out)
    ckpt = read_model("resume", out)
    model = model_from_checkpoint(ckpt)
    scores, _ = score_run(model, ckpt["meta"]["vocab_size"], HeadsConfig(half=c.half, batch=64),
                          f"{c.name}: {run}, seed {seed}", out)
    best = max((v, i, h) for i, r in enumerate(scores["induction"]) for h, v in enumerate(r))
    last = rows[-1]
    return {"seed": seed, "seconds": seconds, "iters": last["iter"], "tokens": last["tokens"],
            "train_loss": last["train_loss"], "val_loss": last["val_loss"], "icl_score": last["icl_score"],
            "max_induction": best[0], "induction_head": [best[1], best[2]],
            "max_previous_token": float(np.max(scores["previous_token"])),
            "first_half_loss": scores["first_half_loss"], "repeat_loss": scores["repeat_loss"],
            "repeat_ratio": scores["repeat_loss"] / scores["first_half_loss"], **formation(rows)}


def summarize(per_seed):
    """Mean and std over seeds of every number in the per-seed records."""
    keys = [k for k, v in per_seed[0].items() if isinstance(v, (int, float)) and k != "seed"]
    out = {}
    for k in keys:
        out[k], out[k + "_std"] = mean_std([p[k] for p in per_seed])
    return out


def plot_training(c, curves, path):
    """ICL score, strongest induction head, repeat / first-half loss on [A][A] and training loss over tokens
    seen: a colour per run, a line per seed."""
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6))
    styles = dict(zip(c.runs, distinct_styles(len(c.runs))))
    for run, seeds in curves.items():
        color, _ = styles[run]
        for k, rows in enumerate(seeds):
            tok = [r["tokens"] for r in rows]
            label = run if k == 0 else None
            axes[0].plot(tok, [r["icl_score"] for r in rows], color=color, lw=1.2, label=label)
            axes[1].plot(tok, [max_induction(r) for r in rows], color=color, lw=1.2, label=label)
            axes[2].plot(tok, [repeat_ratio(r) for r in rows], color=color, lw=1.2, label=label)
            axes[3].plot(tok, [r["train_loss"] for r in rows], color=color, lw=1.2, label=label)
    axes[0].axhline(0, color="black", lw=0.8)
    axes[0].set(ylabel="ICL score (nats): loss at 0.9 T - loss at 0.1 T", title="in-context learning")
    axes[1].set(ylabel="induction score of the strongest head", ylim=(0, 1), title="strongest induction head")
    axes[2].axhline(0.5, color="black", lw=0.8, ls=":")
    axes[2].set(ylabel="loss on the repeat / loss on A", title="[A][A]: the repeat against its first copy")
    axes[3].set(ylabel="train loss (nats)", title="training loss")
    for ax in axes:
        ax.set_xlabel("tokens seen")
        ax.legend(fontsize=8)
    fig.suptitle(wrap(f"{c.name}: {len(c.seeds)} seeds, a line per seed; {c.common.get('dataset', '')}", 120))
    return save(fig, path)


def results_md(c, results, command):
    lines = [f"# {c.name}", "", f"`{command}`", "",
             "| run | max induction score | repeat / first-half loss | final ICL score | val loss | "
             "induction rises at (tokens) | repeat loss halved at (tokens) | steepest ICL drop at (tokens) | "
             "minutes per run |",
             "|---|---|---|---|---|---|---|---|---|"]

    def pm(s, k, fmt):
        m, sd = s.get(k), s.get(k + "_std")
        return "-" if m is None else (f"{m:{fmt}} ± {sd:{fmt}}" if sd is not None else f"{m:{fmt}}")

    def millions(ts):
        return ", ".join("-" if t is None else f"{t / 1e6:.2f}M" for t in ts)

    for run, r in results["runs"].items():
        s, seeds = r["mean"], r["per_seed"]
        lines.append(f"| {run} | {pm(s, 'max_induction', '.3f')} | {pm(s, 'repeat_ratio', '.3f')} | "
                     f"{pm(s, 'icl_score', '.3f')} | {pm(s, 'val_loss', '.3f')} | "
                     f"{millions(p['induction_rise_tokens'] for p in seeds)} | "
                     f"{millions(p['repeat_halved_tokens'] for p in seeds)} | "
                     f"{millions(p['icl_drop_tokens'] for p in seeds)} | {s['seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["heads"]:
        return heads(argv[1:])
    (c,), _ = configure([InductionConfig()], argv, description=__doc__)
    if not c.name or not c.runs:
        raise UserError("give a config that sets name and runs, e.g. python tools/induction.py "
                        "config/sweeps/induction_synthetic.py, or score one model: heads --out_dir=RUN")
    prepare_data(c)
    results = {"command": " ".join(["python tools/induction.py", *argv]), "prepare": f"python {c.prepare}",
               "seeds": list(c.seeds), "common": c.common, "runs": {}}
    curves = {}
    for run in c.runs:
        per_seed = [one_seed(c, run, s) for s in c.seeds]
        curves[run] = [read_metrics(run_dir(c, run, s)) for s in c.seeds]
        results["runs"][run] = {"keys": c.runs[run], "mean": summarize(per_seed), "per_seed": per_seed}
    out = os.path.join(ROOT, c.out_root, c.name)
    paths = [plot_training(c, curves, os.path.join(out, "training.png"))]
    for run in c.runs:  # each run's final heads, first seed
        paths.append(os.path.join(out, f"heads_{run}.png"))
        shutil.copyfile(os.path.join(run_dir(c, run, c.seeds[0]), "heads.png"), paths[-1] + ".tmp")
        os.replace(paths[-1] + ".tmp", paths[-1])
    atomic_write_text(os.path.join(out, "results.json"), json.dumps(results, indent=1))
    atomic_write_text(os.path.join(out, "results.md"), results_md(c, results, results["command"]))
    paths += [os.path.join(out, "results.json"), os.path.join(out, "results.md")]
    print(results_md(c, results, results["command"]))
    for p in paths:
        print(f"wrote {p}")


if __name__ == "__main__":
    main_guard(main)
