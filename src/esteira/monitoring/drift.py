"""Distances between a reference and a current distribution, both given as counts over the
same bins (numeric quantile bins, or categories plus "other"). Counts rather than rows:
the reference is summarized once, and counts can come from pandas, DuckDB or Spark.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

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
    """Jensen-Shannon distance (base 2): 0 for equal distributions, 1 for disjoint ones."""
    p, q = proportions(reference_counts), proportions(current_counts)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(np.sqrt(max(divergence, 0.0)))
