"""Distances between a reference and a current distribution, both given as counts over the
same bins (numeric quantile bins, or categories plus "other"). Counts rather than rows:
the reference is summarized once, and counts can come from pandas, DuckDB or Spark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from esteira.summaries.tally import Tally

# Empty bins get this proportion, as Evidently does, so that PSI stays finite.
EMPTY_BIN = 1e-4


def proportions(counts: ArrayLike) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    p = c / total if total > 0 else np.full_like(c, 1.0 / max(len(c), 1))
    return np.clip(p, EMPTY_BIN, None)


def psi(reference_counts: ArrayLike, current_counts: ArrayLike) -> float:
    """Population stability index: sum((q - p) * ln(q / p)); 0.1 moderate, 0.25 large."""
    p, q = proportions(reference_counts), proportions(current_counts)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference_counts: ArrayLike, current_counts: ArrayLike) -> float:
    """Jensen-Shannon distance with natural logarithms, as scipy and Evidently compute it:
    0 for equal distributions, sqrt(ln 2) = 0.83 for disjoint ones."""
    p, q = _shares(reference_counts), _shares(current_counts)
    m = (p + q) / 2
    # No floor here: an empty bin contributes 0 (0 log 0 = 0) and m > 0 wherever p or q is.
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / m), 0.0) + np.where(q > 0, q * np.log(q / m), 0.0)
    return float(np.sqrt(max(0.5 * float(np.sum(terms)), 0.0)))


def _shares(counts: ArrayLike) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    return c / c.sum() if c.sum() > 0 else np.full_like(c, 1.0 / max(len(c), 1))


def wasserstein_normed(reference_quantiles: ArrayLike, current: ArrayLike, std: float) -> float:
    """Wasserstein-1 distance between the reference (given by evenly spaced quantiles) and
    the current values, divided by the reference standard deviation (floored at 0.001, as
    Evidently does): 0.1 means the mass moved a tenth of a standard deviation."""
    q_ref = np.asarray(reference_quantiles, dtype=float)
    q_cur = np.quantile(np.asarray(current, dtype=float), _levels(len(q_ref)))
    return _normed(q_ref, q_cur, std)


def tally_wasserstein(tally: Tally) -> float:
    """`wasserstein_normed` of the values a tally counted, from its quantiles."""
    q_ref = np.asarray(tally.reference.quantiles, dtype=float)
    return _normed(q_ref, tally.quantiles(_levels(len(q_ref))), tally.reference.std or 0.0)


def _normed(q_ref: np.ndarray, q_cur: np.ndarray, std: float) -> float:
    return float(np.mean(np.abs(q_ref - q_cur)) / max(std, 0.001))


def ks_test(
    reference_quantiles: ArrayLike, reference_n: int, current: ArrayLike
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value, the reference known by its
    quantiles (so D is exact to their spacing)."""
    cur = np.sort(np.asarray(current, dtype=float))
    return _ks(reference_quantiles, reference_n, len(cur),
               lambda points: np.searchsorted(cur, points, side="right") / len(cur))  # fmt: skip


def tally_ks_test(tally: Tally) -> tuple[float, float]:
    """`ks_test` of the values a tally counted: the current CDF at the reference quantiles
    is exact, since they lie on the tally's grid."""
    ref = tally.reference
    return _ks(ref.quantiles, ref.count - ref.nulls, tally.present, tally.cdf_at)


def _ks(
    reference_quantiles: ArrayLike,
    reference_n: int,
    current_n: int,
    current_cdf: Callable[[np.ndarray], np.ndarray],
) -> tuple[float, float]:
    from scipy.stats import kstwo

    q_ref = np.asarray(reference_quantiles, dtype=float)
    # Both CDFs at each distinct reference quantile: a value many quantiles share (a
    # discrete column: 1 or 2) stands for all their levels, not only the first of them.
    points = np.unique(q_ref)
    f_ref = _levels(len(q_ref))[np.searchsorted(q_ref, points, side="right") - 1]
    d = float(np.max(np.abs(f_ref - current_cdf(points))))
    n = reference_n * current_n / (reference_n + current_n)
    return d, float(kstwo.sf(d, max(round(n), 1)))


def _levels(n: int) -> np.ndarray:
    from esteira.summaries.profile import quantile_levels

    return quantile_levels(n)


def chi_square_test(reference_counts: ArrayLike, current_counts: ArrayLike) -> tuple[float, float]:
    """Chi-square goodness of fit of the current category counts to the reference shares."""
    from scipy.stats import chisquare

    cur = np.asarray(current_counts, dtype=float)
    expected = proportions(reference_counts)
    expected = expected / expected.sum() * cur.sum()
    statistic, p = chisquare(cur, expected)
    return float(statistic), float(p)
