"""A model's performance on labelled rows: the metrics of its task, and nothing of another's.

binary: ROC AUC, PR AUC, log loss, precision and recall at `[model] threshold`, and the mean
prediction against the positive rate (calibration); multiclass: log loss, macro-F1,
accuracy, recall per class and the confusion matrix; regression: RMSE, MAE, R², bias (mean
residual) and the residuals' distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esteira.metrics import Scores, resolve_metric, score

if TYPE_CHECKING:
    import numpy as np

    from esteira.metadata import MonitoringRecord

Details = Callable[["np.ndarray", Scores, float], dict[str, Any]]


@dataclass(frozen=True)
class Monitored:
    """What monitoring computes for a task."""

    metrics: tuple[str, ...]
    segment_metrics: tuple[str, ...]
    """Shown per segment beside the key metric."""
    details: Details
    """Figures that are not single metrics (calibration, confusion matrix, residuals)."""


def _calibration(y: np.ndarray, s: Scores, threshold: float) -> dict[str, Any]:
    mean, rate = float(s.values.mean()), float(y.mean())
    return {"mean_prediction": mean, "positive_rate": rate, "calibration_gap": mean - rate}


def _classes(y: np.ndarray, s: Scores, threshold: float) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, recall_score

    labels, predicted = list(s.classes), s.predicted()
    recall = recall_score(y, predicted, labels=labels, average=None, zero_division=0)
    matrix = confusion_matrix(y, predicted, labels=labels)
    return {
        "recall_per_class": {str(c): float(r) for c, r in zip(labels, recall, strict=True)},
        "confusion_matrix": {"classes": [str(c) for c in labels], "counts": matrix.tolist()},
    }


RESIDUAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _residuals(y: np.ndarray, s: Scores, threshold: float) -> dict[str, Any]:
    """Quantiles of label − prediction, and a histogram of its central 98% for the report."""
    import numpy as np

    residuals = y - s.values
    low, high = np.quantile(residuals, [0.01, 0.99])
    counts, edges = np.histogram(np.clip(residuals, low, high), bins=16)
    return {
        "residual_quantiles": {
            f"p{round(q * 100)}": float(v)
            for q, v in zip(
                RESIDUAL_QUANTILES, np.quantile(residuals, RESIDUAL_QUANTILES), strict=True
            )
        },
        "residual_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


MONITORED: dict[str, Monitored] = {
    "binary": Monitored(
        ("roc_auc", "pr_auc", "log_loss", "precision", "recall"),
        ("precision", "recall"),
        _calibration,
    ),
    "multiclass": Monitored(
        ("log_loss", "macro_f1", "accuracy"), ("macro_f1", "accuracy"), _classes
    ),
    "regression": Monitored(("rmse", "mae", "r2", "bias"), ("mae", "bias"), _residuals),
}


def performance(
    y: Any, scores: Scores, extra: Iterable[str] = (), threshold: float = 0.5
) -> dict[str, Any]:
    """The task's metrics and details of `scores` against labels `y`, with the `extra`
    metrics the project names (gate thresholds, its key metric)."""
    monitored = MONITORED[scores.task]
    found: dict[str, Any] = {"task": scores.task}
    found |= score([*monitored.metrics, *extra], y, scores, threshold)
    if len(scores):
        found |= monitored.details(scores.truth(y), scores, threshold)
    found["rows"] = len(scores)
    return found


def segment_performance(y: Any, scores: Scores, key: str, threshold: float = 0.5) -> dict[str, Any]:
    """The key metric and the task's segment metrics on one segment's rows."""
    names = [key, *MONITORED[scores.task].segment_metrics]
    return score(names, y, scores, threshold) | {"rows": len(scores)}


def record_task(record: MonitoringRecord) -> str:
    """The task a monitoring record was computed for (records before tasks were binary)."""
    return record.metrics.get("task", "binary")


def key_metric(configured: str, record: MonitoringRecord) -> str:
    """The metric a record is judged by: `[ct] metric`, else its task's default."""
    return resolve_metric(configured, record_task(record), "[ct] metric")
