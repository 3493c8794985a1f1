"""Model quality metrics per task, each with the direction that means "better".

A model's task (binary, multiclass or regression) decides what its predictions are and
which metrics fit it. Gates compare challenger and champion on one of them, monitoring
computes the task's set, and performance triggers know whether a metric moving is the bad
news (a log loss going up is; a ROC AUC going up isn't). The catalogue is plain knowledge
with no store behind it, so the configuration checks the metrics it names against it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from esteira.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
TASK_TAG = "esteira.task"
"""The model-version tag that records the task a version was trained for."""
DEFAULT_METRIC: dict[str, str] = {
    "binary": "roc_auc",
    "multiclass": "log_loss",
    "regression": "rmse",
}


class MetricError(ConfigError):
    """A metric is unknown, or does not fit the model's task."""


class Direction(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"
    ZERO = "closer to zero"


@dataclass(frozen=True)
class Scores:
    """A model's predictions on some rows, in the form its task is judged on: the positive
    class's score (binary), one probability per class in `classes` order (multiclass; the
    predicted classes when the model gives no probabilities), or the value (regression)."""

    task: Task
    values: np.ndarray
    classes: tuple[Any, ...] = ()
    """A classifier's classes, in the order of its probability columns (the last is the
    positive class of a binary classifier)."""

    @classmethod
    def of(cls, task: Task, output: Any, classes: Iterable[Any] | None = None) -> Scores:
        """Scores from what a model's predict method returned (or the service answered)."""
        import numpy as np

        values = np.asarray(output.to_numpy() if hasattr(output, "to_numpy") else output)
        known = tuple(classes) if classes is not None else ()
        if task == "multiclass":
            if values.ndim == 2:
                width = values.shape[1]
                if known and len(known) != width:
                    raise MetricError(
                        f"the model gives {width} probabilities per row for {len(known)} classes"
                    )
                return cls(task, values.astype(float), known or tuple(range(width)))
            return cls(task, values, known or tuple(np.unique(values)))
        values = values.astype(float)
        if values.ndim == 2:  # a classifier's probabilities: the positive class is the last
            values = values[:, -1]
        return cls(task, values, known)

    def __len__(self) -> int:
        return len(self.values)

    def rows(self, index: Any) -> Scores:
        return replace(self, values=self.values[index])

    @property
    def has_probabilities(self) -> bool:
        return self.task == "binary" or (self.task == "multiclass" and self.values.ndim == 2)

    def predicted(self, threshold: float = 0.5) -> np.ndarray:
        """The predicted class (binary: 1 when the score reaches `threshold`) or value."""
        import numpy as np

        if self.task == "binary":
            return (self.values >= threshold).astype(int)
        if self.task == "multiclass" and self.values.ndim == 2:
            return np.asarray(self.classes)[self.values.argmax(axis=1)]
        return self.values

    def point(self) -> np.ndarray:
        """One figure per row for prediction drift: the positive score, the predicted class
        (as text, so it drifts as a category), or the value."""
        if self.task == "multiclass":
            return self.predicted().astype(str)
        return self.values

    def truth(self, y: Any) -> np.ndarray:
        """Labels in the form the metrics compare with: 1 for the positive class (binary)."""
        import numpy as np

        y = np.asarray(y)
        if self.task == "binary":
            return (y == self.classes[-1]).astype(int) if self.classes else y.astype(float)
        if self.task == "regression":
            return y.astype(float)
        return y


Compute = Callable[["np.ndarray", Scores, float], float]


@dataclass(frozen=True)
class Metric:
    name: str
    better: Direction
    tasks: tuple[Task, ...]
    description: str
    compute: Compute
    defined: Callable[[np.ndarray, Scores], bool] = lambda y, s: len(y) > 0
    """Whether the metric means anything on these rows (ROC AUC needs both classes)."""

    def worse_by(self, value: float, reference: float) -> float:
        """How much worse `value` is than `reference` (negative when better)."""
        if self.better is Direction.HIGHER:
            return reference - value
        if self.better is Direction.LOWER:
            return value - reference
        return abs(value) - abs(reference)

    @property
    def worse_side(self) -> str:
        """Where the values worse than a limit lie: below, above, or further from zero."""
        sides = {Direction.HIGHER: "below", Direction.LOWER: "above"}
        return sides.get(self.better, "further from zero than")


def _sk(name: str) -> Any:
    import sklearn.metrics

    return getattr(sklearn.metrics, name)


def _varies(y: np.ndarray, s: Scores) -> bool:
    """Both classes present (binary), or labels that are not all the same (regression)."""
    return len(set(y.tolist())) > 1


def _probabilities(y: np.ndarray, s: Scores) -> bool:
    """Probabilities for every label: a class the model never saw has none."""
    if not len(y) or not s.has_probabilities:
        return False
    return s.task == "binary" or set(y.tolist()) <= set(s.classes)


def _log_loss(y: np.ndarray, s: Scores, threshold: float) -> float:
    import numpy as np

    if s.task == "binary":
        return _sk("log_loss")(y, np.clip(s.values, 1e-15, 1 - 1e-15), labels=[0, 1])
    order = np.argsort(np.asarray(s.classes))  # scikit-learn expects the columns sorted
    return _sk("log_loss")(y, s.values[:, order], labels=list(np.asarray(s.classes)[order]))


def _at_threshold(name: str, **options: Any) -> Compute:
    def compute(y: np.ndarray, s: Scores, threshold: float) -> float:
        return _sk(name)(y, s.predicted(threshold), **options)

    return compute


def _on_scores(name: str) -> Compute:
    return lambda y, s, threshold: _sk(name)(y, s.values)


def _macro_f1(y: np.ndarray, s: Scores, threshold: float) -> float:
    return _sk("f1_score")(
        y, s.predicted(), labels=list(s.classes), average="macro", zero_division=0
    )


def _rmse(y: np.ndarray, s: Scores, threshold: float) -> float:
    return float(_sk("mean_squared_error")(y, s.values)) ** 0.5


def _bias(y: np.ndarray, s: Scores, threshold: float) -> float:
    return float((y - s.values).mean())


BINARY: tuple[Task, ...] = ("binary",)
CLASSIFIERS: tuple[Task, ...] = ("binary", "multiclass")
REGRESSION: tuple[Task, ...] = ("regression",)
HIGHER, LOWER, ZERO = Direction.HIGHER, Direction.LOWER, Direction.ZERO

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", HIGHER, BINARY, "area under the ROC curve of the positive score",
               _on_scores("roc_auc_score"), _varies),
        Metric("pr_auc", HIGHER, BINARY, "average precision (area under precision-recall)",
               _on_scores("average_precision_score"), _varies),
        Metric("log_loss", LOWER, CLASSIFIERS, "cross-entropy of the predicted probabilities",
               _log_loss, _probabilities),
        Metric("brier", LOWER, BINARY, "mean squared error of the positive score",
               _on_scores("brier_score_loss")),
        Metric("accuracy", HIGHER, CLASSIFIERS, "share of rows whose class is predicted",
               _at_threshold("accuracy_score")),
        Metric("f1", HIGHER, BINARY, "F1 of the positive class at [model] threshold",
               _at_threshold("f1_score", zero_division=0)),
        Metric("precision", HIGHER, BINARY, "precision at [model] threshold",
               _at_threshold("precision_score", zero_division=0)),
        Metric("recall", HIGHER, BINARY, "recall at [model] threshold",
               _at_threshold("recall_score", zero_division=0)),
        Metric("macro_f1", HIGHER, ("multiclass",), "F1 averaged over the classes", _macro_f1),
        Metric("rmse", LOWER, REGRESSION, "root mean squared error", _rmse),
        Metric("mae", LOWER, REGRESSION, "mean absolute error", _on_scores("mean_absolute_error")),
        Metric("r2", HIGHER, REGRESSION, "coefficient of determination",
               _on_scores("r2_score"), _varies),
        Metric("bias", ZERO, REGRESSION,
               "mean residual (label − prediction): positive when the model predicts too low",
               _bias),
    )
}  # fmt: skip


def fitting(task: str) -> list[str]:
    """The metrics that fit `task`, its default first."""
    names = [n for n, m in METRICS.items() if task in m.tasks]
    return sorted(names, key=lambda n: n != DEFAULT_METRIC[task])


def metric(name: str, setting: str = "metric") -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        nearest = difflib.get_close_matches(name, METRICS, n=1)
        hint = f"; did you mean '{nearest[0]}'?" if nearest else "."
        raise MetricError(
            f"{setting} = '{name}' is not a metric esteira knows{hint} Metrics by task: "
            + "; ".join(f"{t}: {', '.join(fitting(t))}" for t in TASKS)
        ) from None


def default_metric(task: str) -> str:
    return DEFAULT_METRIC[task]


def check_fits(name: str, task: str, setting: str = "metric") -> Metric:
    """The metric `name`, which must fit `task`; else an error listing those that do."""
    found = METRICS.get(name)
    if found is not None and task in found.tasks:
        return found
    valid = fitting(task)
    nearest = difflib.get_close_matches(name, valid, n=1, cutoff=0)[0]
    what = (
        "is not a metric esteira knows"
        if found is None
        else f"does not fit a {task} model ({name} is for {' and '.join(found.tasks)} models)"
    )
    raise MetricError(
        f"{setting} = '{name}' {what}. Metrics for {task}: {', '.join(valid)} "
        f"(default {valid[0]}); the nearest is '{nearest}'"
    )


def resolve_metric(configured: str, task: str, setting: str = "metric") -> str:
    """The configured metric, checked against `task`, or the task's default when unset."""
    return check_fits(configured, task, setting).name if configured else default_metric(task)


def check_settings(task: str | None, named: Mapping[str, str]) -> None:
    """Check the metrics that settings name (setting -> metric): each must fit `task`, or
    with no task configured be known, and together fit at least one task."""
    for setting, name in named.items():
        if task:
            check_fits(name, task, setting)
        else:
            metric(name, setting)
    if task is None and named:
        common = set(TASKS).intersection(*(METRICS[n].tasks for n in named.values()))
        if not common:
            listed = ", ".join(f"{s} = '{n}'" for s, n in named.items())
            raise MetricError(
                f"{listed}: no task fits all of these metrics; set [model] task and name "
                "metrics of that task"
            )


def score(names: Iterable[str], y: Any, scores: Scores, threshold: float = 0.5) -> dict[str, float]:
    """The named metrics of `scores` against labels `y`; those not defined on these rows
    (ROC AUC on one class) are left out."""
    truth = scores.truth(y)
    found = {}
    for name in dict.fromkeys(names):
        m = check_fits(name, scores.task)
        if m.defined(truth, scores):
            found[name] = float(m.compute(truth, scores, threshold))
    return found


def why_undefined(name: str, y: Any, scores: Scores) -> str:
    """Why metric `name` cannot be computed on these rows, said so the user can act."""
    truth = scores.truth(y)
    if not len(truth):
        return "the test data has no rows"
    if name == "log_loss" and not scores.has_probabilities:
        return ("needs probabilities, and the model gives classes: log it with "
                'predict_fn="predict_proba"')  # fmt: skip
    unseen = set(truth.tolist()) - set(scores.classes) if scores.task == "multiclass" else set()
    if name == "log_loss" and unseen:
        listed = ", ".join(sorted(map(str, unseen)))
        return f"the test data has classes the model never learned ({listed})"
    if not _varies(truth, scores):
        one = "class" if scores.task == "binary" else "label value"
        return f"the test data has a single {one}"
    return "it is not defined on the test data"


def infer_task(model: Any, output: Any = None) -> Task:
    """The task of a model: a classifier's number of classes, a regressor, or, for other
    models, the shape of what it predicts (`output`)."""
    import numpy as np
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model) and hasattr(model, "classes_"):
        return "binary" if len(model.classes_) == 2 else "multiclass"
    if is_regressor(model):
        return "regression"
    values = np.asarray(output) if output is not None else None
    if values is not None and values.ndim == 2 and values.shape[1] > 1:
        return "binary" if values.shape[1] == 2 else "multiclass"
    if values is not None and values.dtype.kind == "f" and (values != values.round()).any():
        return "regression"
    raise ConfigError(
        f"cannot tell whether the {type(model).__name__} model is a binary or multiclass "
        'classifier or a regressor: set [model] task = "binary", "multiclass" or "regression"'
    )


def registered_task(configured: str | None, model: Any, output: Any) -> Task:
    """The task to record on a new version: the configured one, which must agree with the
    model where the model tells, else the one the model shows."""
    try:
        inferred = infer_task(model, output)
    except ConfigError:
        if configured:
            return configured  # type: ignore[return-value]
        raise
    if configured and configured != inferred:
        raise ConfigError(
            f"[model] task is '{configured}' but the {type(model).__name__} being registered "
            f'is a {inferred} model; set [model] task = "{inferred}" or remove it'
        )
    return inferred
