"""Checks of a number column against what history allows: where its mean may lie, how
wide it may spread, how many of its values may be negative, how many may fall outside the
reference's range.

Seasons move means a long way (July's temperatures are 5 reference standard deviations
above January-March's), so a mean is judged against the range of every earlier batch's
mean, and after a gap that range widens by the most history ever moved per batch times
the batches missing. A change of units or of sign is what history never did: a spread many
times outside every earlier batch's (hours in minutes, a column gone constant), negative
values where there were none (30% negative distances, Celsius in winter), most values out
of range (Celsius in summer; after a gap, out-of-range values only warn).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from esteira.config import Thresholds
from esteira.validation.findings import Finding, over_limit
from esteira.validation.history import spread_of

if TYPE_CHECKING:
    from esteira.summaries.profile import ColumnProfile
    from esteira.validation.history import ColumnHistory


def shift_checks(
    data: np.ndarray, ref: ColumnProfile, history: ColumnHistory, gap: int, limits: Thresholds
) -> list[Finding]:
    """`data`: the batch's present values of number column `ref.name`."""
    allowance = history.drift * max(gap - 1, 0)
    return [
        _out_of_range(data, ref, allowance, gap, limits.max_out_of_range_rate),
        _mean_shift(data, ref, history, allowance, limits.max_mean_shift_std),
        _spread(data, ref.name, history, limits.max_spread_ratio),
        _scale(data, ref.name, history, gap, limits.max_scale_steps),
        *_negatives(data, ref.name, history, limits.max_negative_rate),
    ]


def _out_of_range(
    data: np.ndarray, ref: ColumnProfile, allowance: float, gap: int, limit: float
) -> Finding:
    # The middle 99% of the reference: one wild reading must not stretch the range.
    low, high = (
        (ref.quantiles[0], ref.quantiles[-1]) if ref.quantiles else (ref.minimum, ref.maximum)
    )
    low, high = low - allowance, high + allowance  # type: ignore[operator]
    outside = float(((data < low) | (data > high)).mean())
    # The range of the batches before a gap says little about values months later (July
    # after March): then it only warns, and the mean, spread and sign checks judge.
    after_gap = f" {gap} batches after the newest earlier one: warns only" if gap > 1 else ""
    return over_limit(
        ref.name, "out_of_range_rate", outside, limit,
        f"{{value:.1%}} of values outside the reference's middle 99% {low:.6g}..{high:.6g} (limit "
        f"{{limit:.1%}}{after_gap}); a change of units or of source?",
        "warn" if gap > 1 else "error",
    )  # fmt: skip


def _mean_shift(
    data: np.ndarray, ref: ColumnProfile, history: ColumnHistory, allowance: float, limit: float
) -> Finding:
    low, high = min(history.means) - allowance, max(history.means) + allowance
    mean = float(data.mean())
    shift = abs(_beyond(mean, [low, high])) / max(ref.std or 0.0, 1e-12)
    return over_limit(
        ref.name, "mean_shift_std", shift, limit,
        f"mean moved {{value:.1f}} reference standard deviations ({mean:.6g}, earlier batches' "
        f"means {low:.6g}..{high:.6g}; limit {{limit}}); a change of units or of source?",
    )  # fmt: skip


def _spread(data: np.ndarray, column: str, history: ColumnHistory, limit: float) -> Finding:
    spread = spread_of(data)
    smallest, largest = min(history.spreads), max(history.spreads)
    ratio = 1.0
    if largest > 0:
        ratio = max(ratio, spread / largest)
    if smallest > 0:
        ratio = max(ratio, smallest / spread if spread > 0 else float("inf"))
    return over_limit(
        column, "spread_ratio", ratio, limit,
        f"spread {spread:.6g} is {{value:.1f}} times outside the earlier batches' "
        f"{smallest:.6g}..{largest:.6g} (limit {{limit}}x); a change of units, or a column "
        "gone constant?",
    )  # fmt: skip


def _scale(
    data: np.ndarray, column: str, history: ColumnHistory, gap: int, limit: float
) -> Finding:
    """Mean and spread moved together, far beyond what history ever moved them per batch:
    a factor on the values (a unit), which the range checks allow when it is modest."""
    mean, spread = float(data.mean()), spread_of(data)
    moves = 0.0
    if len(history.means) >= 3 and history.drift > 0 and history.spread_drift > 0 and spread > 0:
        factors = [math.log(s) for s in history.spreads]
        by_mean = _beyond(mean, history.means) / (history.drift * gap)
        by_spread = _beyond(math.log(spread), factors) / (history.spread_drift * gap)
        if by_mean * by_spread > 0:  # the same way: both up, or both down
            moves = min(abs(by_mean), abs(by_spread))
    return over_limit(
        column, "scale_steps", moves, limit,
        f"mean {mean:.6g} and spread {spread:.6g} both moved {{value:.1f}} times the most "
        f"earlier batches moved them per batch (means {min(history.means):.6g}.."
        f"{max(history.means):.6g}, spreads {min(history.spreads):.6g}.."
        f"{max(history.spreads):.6g}; limit {{limit}}); a change of units (miles to km)?",
    )  # fmt: skip


def _beyond(value: float, earlier: list[float]) -> float:
    """How far `value` lies above (positive) or below (negative) the range of `earlier`."""
    return max(value - max(earlier), 0.0) - max(min(earlier) - value, 0.0)


def _negatives(data: np.ndarray, column: str, history: ColumnHistory, limit: float) -> list:
    before = max(history.negative_shares)
    if before > limit:  # a column with negative values (delays, temperatures): sign says little
        return []
    share = float((data < 0).mean())
    return [
        over_limit(column, "negative_rate", share, limit,
                   f"{{value:.1%}} of values are negative, where no earlier batch had more than "
                   f"{before:.1%} (limit {{limit:.1%}}); a change of sign or of units?")
    ]  # fmt: skip
