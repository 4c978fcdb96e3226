"""
Plots: drawn from runs' metrics.jsonl, so they can be redrawn at any time (--plot_only=True).

    plot_run          one run: loss per position over training, loss curves, mean p(target), and the
                      in-context-learning score with each head's induction score (icl.png)
    plot_head_scores  every head's previous-token, duplicate-token and induction scores as heat maps
    plot_comparison   several runs (tools/compare.py, tools/analyze.py positions): their curves, zoomed on
                      where they differ, and each run minus the reference
"""

import json
import math
import os
from dataclasses import fields

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from helpers.checkpoint import atomic_write, read_metrics  # noqa: E402
from model import GPTConfig  # noqa: E402

SIZE_KEYS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "attn_impl")
MIN_SHARE = 0.1  # positions that fewer than this share of the evaluated sequences reach are not drawn


def save(fig, path, dpi=110):
    """Write a figure as PNG (atomically) and close it; returns the path."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    plt.close(fig)
    return path


def variant_flags(config):
    """The variant and optimizer keys of a run's config.json that differ from the GPT-2 baseline,
    as "key=value" strings (model sizes and the attention kernel are not variants)."""
    default = GPTConfig()
    flags = [f"{f.name}={config['model'][f.name]}" for f in fields(GPTConfig)
             if f.name not in SIZE_KEYS and f.name in config["model"]
             and config["model"][f.name] != _listed(getattr(default, f.name))]
    train = config.get("train", {})
    if train.get("optimizer", "adamw") != "adamw":
        flags.append(f"optimizer={train['optimizer']}")
    if train.get("freeze_base"):
        flags.append("freeze_base=True")
    return flags


def _listed(value):
    return list(value) if isinstance(value, tuple) else value  # config.json stores tuples as lists


def run_title(out_dir):
    """The run's folder name and its non-default flags, e.g. "out-w: layer_windows=[8, 64, 64, 8]"."""
    name = os.path.basename(os.path.normpath(out_dir))
    path = os.path.join(out_dir, "config.json")
    if not os.path.exists(path):
        return name
    with open(path) as f:
        flags = variant_flags(json.load(f))
    return f"{name}: {', '.join(flags) if flags else 'GPT-2 baseline'}"


def position_curve(row, min_share=MIN_SHARE):
    """A metrics row's loss per position as floats, NaN where no target was scored or where fewer than
    min_share of the sequences reached (a mean over a handful of documents is noise, not a trend)."""
    loss = np.array([math.nan if v is None else v for v in row["position_loss"]], dtype=float)
    count = row.get("position_count")
    if count:
        count = np.array(count, dtype=float)
        loss[count < min_share * count.max()] = math.nan
    return loss


def plot_run(out_dir, plot_dir):
    """Loss per position (one curve per eval, coloured by iteration), loss curves and mean_p."""
    rows = read_metrics(out_dir)
    if not rows:
        return []
    os.makedirs(plot_dir, exist_ok=True)
    title = run_title(out_dir)
    iters = [r["iter"] for r in rows]

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    cmap = plt.get_cmap("viridis")
    norm = matplotlib.colors.Normalize(vmin=min(iters), vmax=max(max(iters), 1))
    for r in rows:
        ax.plot(position_curve(r), color=cmap(norm(r["iter"])), lw=1.2)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="iteration")
    ax.set(xlabel="position in context (tokens)", ylabel="val loss (nats)",
           title=wrap(f"{title}\nloss at each position, one curve per eval"))

    fig2, ax2 = plt.subplots(figsize=(7.5, 4.5))
    ax2.plot(iters, [r["train_loss"] for r in rows], label="train")
    ax2.plot(iters, [r["val_loss"] for r in rows], label="val")
    ax2.set(xlabel="iteration", ylabel="loss (nats)", title=wrap(f"{title}\nloss"))
    ax2.legend()

    fig3, ax3 = plt.subplots(figsize=(7.5, 4.5))
    ax3.plot(iters, [r["mean_p"] for r in rows], marker=".")
    ax3.set(xlabel="iteration", ylabel="mean p(correct next token)",
            title=wrap(f"{title}\nmean probability of the target"))
    names = ("position_loss.png", "loss.png", "mean_p.png")
    paths = [save(f, os.path.join(plot_dir, n)) for f, n in zip((fig, fig2, fig3), names)]
    if any(r.get("icl_score") is not None for r in rows):
        paths.append(save(plot_icl(rows, title), os.path.join(plot_dir, "icl.png")))
    return paths


def plot_icl(rows, title):
    """The ICL score over training and, when the run recorded them (head_scores), every head's induction score."""
    heads = [r for r in rows if "head_scores" in r]
    fig, axes = plt.subplots(1, 2 if heads else 1, figsize=(13 if heads else 7.5, 4.5), squeeze=False)
    ax = axes[0][0]
    scored = [r for r in rows if r.get("icl_score") is not None]
    ax.plot([r["iter"] for r in scored], [r["icl_score"] for r in scored], marker=".")
    ax.axhline(0, color="black", lw=0.8)
    T = len(scored[-1]["position_loss"])  # the positions the score was read from: the context length
    ax.set(xlabel="iteration", ylabel="ICL score (nats): loss at 0.9 T - loss at 0.1 T",
           title=f"in-context learning (T = {T}, the context length)\n"
                 "below 0 is better: later positions predicted better than early ones")
    if heads:
        ax2 = axes[0][1]
        scores = np.array([r["head_scores"]["induction"] for r in heads])  # (evals, L, H)
        it = [r["iter"] for r in heads]
        styles = distinct_styles(scores.shape[1] * scores.shape[2])
        for k, (layer, h) in enumerate(np.ndindex(scores.shape[1:])):
            color, ls = styles[k]
            ax2.plot(it, scores[:, layer, h], color=color, ls=ls, label=f"L{layer}H{h}")
        ax2.set(xlabel="iteration", ylabel="induction score", ylim=(0, 1), title="each head's induction score")
        ax2.legend(fontsize=7, ncol=2)
    fig.suptitle(wrap(title))
    return fig


def plot_head_scores(scores, path, title):
    """Heat maps (layer x head) of head_scores' three scores, each cell labelled with its value."""
    kinds = ("previous_token", "duplicate_token", "induction")
    L, H = np.array(scores[kinds[0]]).shape
    fig, axes = plt.subplots(1, 3, figsize=(3 + 1.2 * H * 3, 1.6 + 0.8 * L), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        m = np.array(scores[kind], dtype=float)
        im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v > 0.6 else "black")
        ax.set(xticks=range(H), yticks=range(L), xlabel="head", ylabel="layer", title=kind.replace("_", " "))
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="mean attention on the pattern")
    fig.suptitle(wrap(title, 110), fontsize=10)
    fig.set_layout_engine("constrained")
    return save(fig, path)


def wrap(title, width=80):
    """Break a long title's lines at commas so that it fits above the plot."""
    out = []
    for line in title.split("\n"):
        while len(line) > width and ", " in line[:width]:
            cut = line[:width].rindex(", ") + 1
            out.append(line[:cut])
            line = "  " + line[cut:].lstrip()
        out.append(line)
    return "\n".join(out)


def distinct_styles(n):
    """n (colour, line style) pairs, no two alike: tab10 or tab20 colours, then dashed and dotted repeats."""
    colors = plt.get_cmap("tab10" if n <= 10 else "tab20").colors
    styles = ("-", "--", ":", "-.")
    return [(colors[i % len(colors)], styles[i // len(colors) % len(styles)]) for i in range(n)]


def zoomed_limits(curves, skip):
    """y limits that hold every curve past the first `skip` share of its x range (the steep start
    where every run is alike), with a 5% margin."""
    tails = []
    for x, y in curves:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        keep = (x >= x.min() + skip * (x.max() - x.min())) & np.isfinite(y)
        tails.append(y[keep])
    tail = np.concatenate(tails) if tails else np.array([])
    if not len(tail):
        return None
    lo, hi = float(tail.min()), float(tail.max())
    pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
    return lo - pad, hi + pad


def plot_comparison(curves, reference, path, xlabel, ylabel, title, skip=0.2):
    """Several runs' curves {label: (x, y)} side by side with each run minus `reference` (a label).

    Left: every curve, the y axis zoomed on the part past the first `skip` of the x range, where runs
    differ (the steep start is cut off). Right: each run minus the reference, at the reference's x
    values. Every run has its own colour and line style; the reference is black. The legend sits
    below the axes.
    """
    fig, (ax, ax_diff) = plt.subplots(1, 2, figsize=(13, 4.8))
    ref_x, ref_y = (np.asarray(v, dtype=float) for v in curves[reference])
    styles = dict(zip([k for k in curves if k != reference], distinct_styles(len(curves) - 1)))
    for label, (x, y) in curves.items():
        color, ls = ("black", "-") if label == reference else styles[label]
        lw = 2.0 if label == reference else 1.2
        ax.plot(x, y, color=color, ls=ls, lw=lw, label=label)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        n = min(len(x), len(ref_x))
        if label != reference and np.array_equal(x[:n], ref_x[:n]):
            ax_diff.plot(x[:n], y[:n] - ref_y[:n], color=color, ls=ls, lw=lw)
    limits = zoomed_limits(curves.values(), skip)
    if limits:
        ax.set_ylim(*limits)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f"y zoomed: the first {skip:.0%} of the x range may run off it")
    ax_diff.axhline(0, color="black", lw=2.0)
    ax_diff.set(xlabel=xlabel, ylabel="run minus the reference", title="each run minus the reference (black)")
    fig.suptitle(wrap(title, 120))
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1 if len(curves) <= 6 else 2, fontsize=8,
               frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
    plt.close(fig)
    return path
