"""
Compute multipliers: what a variant's loss at budget B is worth in baseline steps.

The baseline's loss curve is measured at a few budgets (each a full run with its own cooldown, e.g. the WSD
branches of tools/compare.py --budgets) and read as piecewise linear in log budget. A variant's loss at B
is found on that curve at some budget B'; the multiplier is B' / B: 2 means the baseline needs twice the
steps to reach the variant's loss. Nothing is extrapolated: a loss the baseline curve never reaches, or
beats already at its smallest budget, is marked ">" (at least max/B) or "<" (at most min/B).
The interval comes from a bootstrap over seeds: the baseline's and the variant's per-seed curves are
resampled independently, the mean curves recomputed, and the multiplier read again.
"""

import numpy as np


def crossing(budgets, losses, target):
    """The budget where the curve (losses at budgets, linear in log budget) first comes down to target.

    Returns (budget, mark): mark "" inside the measured range; ">" with the largest budget when the curve
    never gets as low as target; "<" with the smallest when the curve is already at or below it there."""
    logb, losses = np.log(np.asarray(budgets, float)), np.asarray(losses, float)
    if losses[0] <= target:
        return float(budgets[0]), "<" if losses[0] < target else ""
    for i in range(len(losses) - 1):
        hi, lo = losses[i], losses[i + 1]
        if lo <= target:  # the first segment that reaches it: interpolate in log budget
            return float(np.exp(logb[i] + (hi - target) / (hi - lo) * (logb[i + 1] - logb[i]))), ""
    return float(budgets[-1]), ">"


def multiplier(budgets, base_losses, budget, loss):
    """(B' / budget, mark) for a variant's loss at budget, on the baseline's curve (marks as crossing's)."""
    b, mark = crossing(budgets, base_losses, loss)
    return b / budget, mark


def bootstrap_multiplier(budgets, base_curves, var_curves, n=2000, level=0.9, seed=0):
    """Per budget: the multiplier of the mean curves and a percentile interval from resampling seeds.

    base_curves, var_curves: (seeds, budgets) losses. Returns one dict per budget: value, mark, low, high,
    low_mark, high_mark (a bound resampled outside the measured range is that range's edge, marked)."""
    base, var = np.asarray(base_curves, float), np.asarray(var_curves, float)
    rng = np.random.default_rng(seed)
    pick_b = rng.integers(0, len(base), (n, len(base)))  # each row: one resample of the baseline's seeds
    pick_v = rng.integers(0, len(var), (n, len(var)))
    base_means, var_means = base[pick_b].mean(1), var[pick_v].mean(1)  # (n, budgets)
    out = []
    for j, budget in enumerate(budgets):
        value, mark = multiplier(budgets, base.mean(0), budget, var.mean(0)[j])
        draws = [multiplier(budgets, bm, budget, vm[j]) for bm, vm in zip(base_means, var_means)]
        values = np.array([v for v, _ in draws])
        low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
        def edge(x):  # a bound at the edge of the measured range, where some resamples fell beyond it
            if x >= budgets[-1] / budget and any(m == ">" for _, m in draws):
                return ">"
            return "<" if x <= budgets[0] / budget and any(m == "<" for _, m in draws) else ""
        out.append({"budget": budget, "value": value, "mark": mark, "low": float(low), "high": float(high),
                    "low_mark": edge(low), "high_mark": edge(high)})
    return out


def describe(value, mark):
    """A multiplier as text: "1.84", or "> 4.00" / "< 0.50" outside the measured range."""
    return f"{mark} {value:.2f}" if mark else f"{value:.2f}"
