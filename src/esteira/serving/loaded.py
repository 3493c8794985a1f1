"""A registered model loaded for serving, and the slot that swaps it without a pause.

Requests take the slot's current model once and keep it for their whole prediction, so a
swap (a plain attribute assignment, atomic under the GIL) never fails or mixes an in-flight
request. A version that fails to load leaves the previous one serving and reports why.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.errors import NotFound

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
    service: FeatureService | None = None
    """The feature service it was trained through: requests may then carry only its fields."""
    service_changed: bool = False
    """The service's definition differs from the one the model was trained with."""

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        """Predictions per row: the positive-class score for a binary classifier's
        probabilities, the row of scores for more classes, the value otherwise."""
        values = np.asarray(self._predict(frame))
        if values.ndim == 2 and values.shape[1] == 2:
            values = values[:, 1]
        return values.tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": self.uri,
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


def load(project: Project, name: str, version: str, alias: str) -> LoadedModel:
    """Load `models:/name/version` natively (scikit-learn) when it can, else as pyfunc."""
    import mlflow
    from mlflow.models import Model

    project.tracker.activate()
    uri = f"models:/{name}/{version}"
    local = mlflow.artifacts.download_artifacts(uri)
    meta = Model.load(local)
    if meta.signature is None:
        raise NotFound(f"{uri} has no signature: log it with an input example to serve it")
    columns = [
        Column(c.name, getattr(c.type, "name", str(c.type)), bool(getattr(c, "required", True)))
        for c in meta.signature.inputs.inputs
    ]
    if "sklearn" in meta.flavors:
        import mlflow.sklearn

        native = mlflow.sklearn.load_model(local)
        predict = getattr(native, meta.flavors["python_function"].get("predict_fn", "predict"))
    else:
        predict = mlflow.pyfunc.load_model(local).predict
    from esteira.registry import Registry

    service, changed = Registry(project).feature_service(name, version)
    return LoadedModel(name, str(version), alias, uri, columns, datetime.now(UTC), predict,
                       service, changed)  # fmt: skip


class ModelSlot:
    """The model a service answers with, following a registry alias."""

    def __init__(self, project: Project, name: str, alias: str, log: Any = print) -> None:
        self.project = project
        self.name = name
        self.alias = alias
        self.current: LoadedModel | None = None
        self.error: str | None = None
        self.log = log
        self._lock = threading.Lock()  # one load at a time

    def refresh(self) -> bool:
        """Load the version the alias points at, if it changed; True when a swap happened."""
        from mlflow.exceptions import MlflowException

        with self._lock:
            try:
                found = self.project.tracker.client.get_model_version_by_alias(
                    self.name, self.alias
                )
            except MlflowException:
                if self.current is None:
                    self.error = f"model '{self.name}' has no '{self.alias}' yet"
                return False
            version = str(found.version)
            if self.current is not None and self.current.version == version:
                return False
            try:
                loaded = load(self.project, self.name, version, self.alias)
            except Exception as e:  # keep serving what we have
                self.error = f"loading version {version} failed: {type(e).__name__}: {e}"
                self.log(self.error)
                return False
            previous, self.current, self.error = self.current, loaded, None
            was = f"from version {previous.version}" if previous else "first load"
            self.log(f"serving {self.name} version {version} ({self.alias}; {was})")
            if loaded.service_changed:
                self.log(f"warning: feature service '{loaded.service.name}' changed since "
                         f"version {version} was trained; its features may differ from "
                         "training")  # fmt: skip
            return True

    def watch(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception as e:  # the watcher must outlive a registry hiccup
                    self.error = f"watching the registry failed: {e}"
                    self.log(self.error)

        thread = threading.Thread(target=loop, name="esteira-model-watch", daemon=True)
        thread.start()
        return thread
