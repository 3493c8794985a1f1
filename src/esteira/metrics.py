"""Model quality metrics, each with the direction that means "better".

Gates compare challenger and champion with these, and performance triggers know whether a
metric falling or rising is the bad news (a log loss going up is; a ROC AUC going up isn't).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from esteira.errors import EsteiraError


@dataclass(frozen=True)
class Metric:
    name: str
    greater_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], float]
    needs_both_classes: bool = False

    def worse_by(self, value: float, reference: float) -> float:
        """How much worse `value` is than `reference` (negative when better)."""
        return reference - value if self.greater_is_better else value - reference


def _sk(name: str) -> Callable[..., float]:
    def compute(y: np.ndarray, p: np.ndarray) -> float:
        import sklearn.metrics as m

        if name == "accuracy":
            return float(m.accuracy_score(y, p >= 0.5))
        if name == "f1":
            return float(m.f1_score(y, p >= 0.5, zero_division=0))
        if name == "log_loss":
            return float(m.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
        if name == "rmse":
            return float(np.sqrt(m.mean_squared_error(y, p)))
        fn: Any = {
            "roc_auc": m.roc_auc_score,
            "pr_auc": m.average_precision_score,
            "brier": m.brier_score_loss,
            "mae": m.mean_absolute_error,
            "r2": m.r2_score,
        }[name]
        return float(fn(y, p))

    return compute


METRICS = {
    m.name: m
    for m in (
        Metric("roc_auc", True, _sk("roc_auc"), needs_both_classes=True),
        Metric("pr_auc", True, _sk("pr_auc"), needs_both_classes=True),
        Metric("log_loss", False, _sk("log_loss")),
        Metric("brier", False, _sk("brier")),
        Metric("accuracy", True, _sk("accuracy")),
        Metric("f1", True, _sk("f1")),
        Metric("rmse", False, _sk("rmse")),
        Metric("mae", False, _sk("mae")),
        Metric("r2", True, _sk("r2")),
    )
}


def metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise EsteiraError(f"unknown metric '{name}'; known metrics: {sorted(METRICS)}") from None


def score(names: list[str], y: Any, p: Any) -> dict[str, float]:
    """The named metrics of predictions `p` against labels `y`; metrics that need both
    classes are left out when `y` has one."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    both = len(np.unique(y)) > 1
    return {n: metric(n).compute(y, p) for n in names if both or not metric(n).needs_both_classes}
