"""A registered model loaded for scoring: one loader that gates, monitoring, serving and batch
prediction share, so a model is judged exactly as it is served.

It loads the scikit-learn model natively where it can (MLflow's pyfunc wrapper costs a frame
copy per call) and calls the method it was logged to predict with (`predict_proba` for a
classifier's scores); its inputs come from the MLflow signature. Its task is `[model] task`,
else the one recorded on the version, else what the model shows (a classifier's classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.errors import ConfigError, NotFound
from esteira.metrics import TASK_TAG, Scores, Task, infer_task

if TYPE_CHECKING:
    import pandas as pd

    from esteira.features import FeatureService
    from esteira.project import Project


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # double | long | integer | float | string | boolean | datetime
    required: bool


@dataclass
class LoadedModel:
    name: str
    version: str
    alias: str
    uri: str
    columns: list[Column]
    loaded_at: datetime
    _predict: Any
    task: Task
    classes: tuple[Any, ...]
    """A classifier's classes in the order of its probability columns; empty otherwise."""
    service: FeatureService | None = None
    """The feature service it was trained through: requests may then carry only its fields."""
    service_changed: bool = False
    """The service's definition differs from the one the model was trained with."""

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """What the model's predict method returns, as an array."""
        return np.asarray(self._predict(frame))

    def scores(self, frame: pd.DataFrame) -> Scores:
        """Predictions in the form the model's task is judged on (metrics.Scores)."""
        return Scores.of(self.task, self.predict_raw(frame), self.classes)

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        """Predictions per row: the positive-class score for a binary classifier's
        probabilities, the row of scores for more classes, the value otherwise."""
        values = self.predict_raw(frame)
        if values.ndim == 2 and values.shape[1] == 2:
            values = values[:, 1]
        return values.tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": self.uri,
            "task": self.task,
            "loaded_at": self.loaded_at.isoformat(),
            "signature": [
                {"name": c.name, "type": c.kind, "required": c.required} for c in self.columns
            ],
            "feature_service": None
            if self.service is None
            else {
                "name": self.service.name,
                "request": [{"name": f, "type": k} for f, k in self.service.request],
                "changed_since_training": self.service_changed,
            },
        }


def load(project: Project, name: str, version: str, alias: str = "") -> LoadedModel:
    """Load `models:/name/version` natively (scikit-learn) when it can, else as pyfunc."""
    import mlflow
    from mlflow.models import Model

    from esteira.registry import Registry

    project.tracker.activate()
    uri = f"models:/{name}/{version}"
    # NotFound names the versions there are; the tags say the task and feature service.
    tags = Registry(project).version(name, version, with_metrics=False).tags
    local = mlflow.artifacts.download_artifacts(uri)
    meta = Model.load(local)
    if meta.signature is None:
        raise NotFound(f"{uri} has no signature: log it with an input example to serve it")
    columns = [
        Column(c.name, getattr(c.type, "name", str(c.type)), bool(getattr(c, "required", True)))
        for c in meta.signature.inputs.inputs
    ]
    native = None
    if "sklearn" in meta.flavors:
        import mlflow.sklearn

        native = mlflow.sklearn.load_model(local)
        predict = getattr(native, meta.flavors["python_function"].get("predict_fn", "predict"))
    else:
        predict = mlflow.pyfunc.load_model(local).predict

    task = _task(project.settings.model.task, tags, native, uri)
    classes = tuple(getattr(native, "classes_", ())) if task != "regression" else ()
    service, changed = Registry(project).feature_service(name, version, tags)
    return LoadedModel(name, str(version), alias, uri, columns, datetime.now(UTC), predict,
                       task, classes, service, changed)  # fmt: skip


def _task(configured: Task | None, tags: dict[str, str], native: Any, uri: str) -> Task:
    """`[model] task`, else the task recorded on the version, else the model's own."""
    recorded = configured or tags.get(TASK_TAG)
    if recorded:
        return recorded  # type: ignore[return-value]
    if native is None:
        raise ConfigError(f"{uri} records no task and is not a scikit-learn model: set "
                          '[model] task = "binary", "multiclass" or "regression"')  # fmt: skip
    return infer_task(native)


def version_task(project: Project, name: str, version: str, tags: dict[str, str]) -> Task:
    """The task of a version, loading it only when neither the settings nor its tags say."""
    recorded = project.settings.model.task or tags.get(TASK_TAG)
    return recorded or load(project, name, version).task  # type: ignore[return-value]


def input_example(project: Project, name: str, version: str) -> pd.DataFrame:
    """The input example `version` of `name` was logged with."""
    import mlflow
    from mlflow.models import Model

    project.tracker.activate()
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}")
    example = Model.load(local).load_input_example(local)
    if example is None:
        raise NotFound(f"version {version} of '{name}' was logged without an input example")
    return example
