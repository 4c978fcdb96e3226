"""helpers/multiplier.py on synthetic loss curves whose multiplier is known."""

import math

import numpy as np
import pytest

from helpers.multiplier import bootstrap_multiplier, crossing, describe, multiplier

BUDGETS = [1000, 2000, 4000, 8000]


def curve(budgets, a=3.0, b=0.2, shift=1.0):
    """loss = a - b log(shift * B): a variant with shift 2 is the baseline given twice the steps."""
    return [a - b * math.log(shift * B) for B in budgets]


def test_a_curve_shifted_by_log_2_is_worth_exactly_twice_the_steps():
    base, var = curve(BUDGETS), curve(BUDGETS, shift=2)
    for j, B in enumerate(BUDGETS[:-1]):
        assert multiplier(BUDGETS, base, B, var[j]) == (pytest.approx(2.0), "")
    b, mark = crossing(BUDGETS, base, curve([3000])[0])  # between measured budgets: log-linear interpolation
    assert (b, mark) == (pytest.approx(3000), "")


def test_outside_the_measured_range_is_marked_not_extrapolated():
    base, var = curve(BUDGETS), curve(BUDGETS, shift=2)
    assert multiplier(BUDGETS, base, 8000, var[-1]) == (1.0, ">")  # 16,000 baseline steps: not measured
    worse = curve(BUDGETS, shift=0.25)  # worth a quarter of the steps: below 1,000 at budget 2,000
    assert multiplier(BUDGETS, base, 2000, worse[1]) == (0.5, "<")
    assert describe(1.0, ">") == "> 1.00" and describe(0.5, "<") == "< 0.50" and describe(1.84, "") == "1.84"


def test_the_first_crossing_of_a_noisy_curve_is_read():
    assert crossing([1, 2, 4, 8], [3.0, 2.0, 2.2, 1.0], 2.5) == (pytest.approx(math.sqrt(2)), "")


def test_the_bootstrap_interval_spans_the_seed_noise_around_the_multiplier_of_the_means():
    noise = np.array([[0.02], [0.0], [-0.02]])  # per-seed offsets that cancel in the mean
    base, var = np.array(curve(BUDGETS)) + noise, np.array(curve(BUDGETS, shift=2)) - noise
    noisy = bootstrap_multiplier(BUDGETS, base, var)
    exact = bootstrap_multiplier(BUDGETS, np.array([curve(BUDGETS)] * 3), np.array([curve(BUDGETS, shift=2)] * 3))
    for w in noisy[:2]:
        assert w["value"] == pytest.approx(2) and w["mark"] == ""
        # the extreme resamples move the curves apart by 0.04 at most: 0.2 of log budget, a factor exp(0.2)
        assert 2 / math.exp(0.2) <= w["low"] < 1.9 and 2.1 < w["high"] <= 2 * math.exp(0.2)
    # at 4,000 the answer is 8,000, the largest budget: resamples above it stop at the edge, marked
    assert noisy[2]["high"] == 2 and noisy[2]["high_mark"] == ">" and noisy[2]["low_mark"] == ""
    for e in exact[:3]:
        assert e["low"] == pytest.approx(2) and e["high"] == pytest.approx(2)
    assert exact[3]["mark"] == exact[3]["low_mark"] == exact[3]["high_mark"] == ">"  # every resample beyond 8,000
