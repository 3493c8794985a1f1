"""What a step sees of the platform: tracking, the lake and model registration.

Everything a step does through its `Context` is recorded on its step run: metrics and
params (sent to MLflow in one batch when the step ends), the lake table versions it read
and wrote, the datasets it trained on and the model versions it registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from esteira.lake import Lake
    from esteira.tracking import RegisteredModel, Tracker


@dataclass
class StepRecord:
    """What a running step has done so far, flushed to metadata and MLflow when it ends."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tables: list[tuple[str, str, int]] = field(default_factory=list)  # (mode, table, version)
    models: list[RegisteredModel] = field(default_factory=list)


class Context:
    """Passed to any step that has a `ctx` argument."""

    def __init__(
        self,
        pipeline: str,
        step: str,
        run_id: str,
        lake: Lake,
        tracker: Tracker,
        mlflow_run: Callable[[], str],
        lineage_tags: Callable[[], dict[str, str]],
    ) -> None:
        self.pipeline = pipeline
        self.step = step
        self.run_id = run_id
        self.lake = lake
        self.record = StepRecord()
        self._tracker = tracker
        self._mlflow_run = mlflow_run
        self._lineage_tags = lineage_tags

    @property
    def mlflow_run_id(self) -> str:
        """The pipeline run's MLflow run, started on first use."""
        return self._mlflow_run()

    # tracking ------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self.record.metrics.update({k: float(v) for k, v in metrics.items()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.record.params.update(params)

    def log_dataset(
        self,
        df: pd.DataFrame,
        name: str,
        table: str | None = None,
        targets: str | None = None,
        context: str = "training",
    ) -> None:
        """Log `df` as an MLflow dataset; with `table`, its source is that lake table's
        version this step read."""
        version = self._version_read(table) if table else None
        source = self.lake.uri(table) if table else f"esteira://{self.pipeline}/{self.step}/{name}"
        self._tracker.log_dataset(self.mlflow_run_id, df, name, source, version, targets, context)

    def log_model(
        self,
        model: Any,
        input_example: pd.DataFrame,
        register_as: str | None = None,
        predict_fn: str = "predict",
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        """Log a model to MLflow with signature and requirements, and register it with tags
        that link it to this run, its code version and the data versions it came from."""
        all_tags = {**self._lineage_tags(), "esteira.step": self.step, **(tags or {})}
        registered = self._tracker.log_model(
            self.mlflow_run_id, model, register_as, input_example, predict_fn, all_tags
        )
        self.record.models.append(registered)
        return registered

    # lake ----------------------------------------------------------------------------

    def read_table(
        self,
        table: str,
        version: int | None = None,
        as_of: datetime | str | None = None,
        columns: list[str] | None = None,
        filters: list[tuple[str, str, Any]] | None = None,
    ) -> pd.DataFrame:
        df, read = self.lake.read(table, version, as_of, columns, filters)
        self.record.tables.append(("read", table, read))
        return df

    def append_table(
        self, table: str, df: pd.DataFrame, partition_by: list[str] | None = None
    ) -> int:
        version = self.lake.append(table, df, partition_by)
        self.record.tables.append(("write", table, version))
        return version

    def replace_table(
        self,
        table: str,
        df: pd.DataFrame,
        where: str | None = None,
        partition_by: list[str] | None = None,
    ) -> int:
        version = self.lake.replace(table, df, where, partition_by)
        self.record.tables.append(("write", table, version))
        return version

    def _version_read(self, table: str) -> int | None:
        versions = [v for mode, t, v in self.record.tables if t == table and mode == "read"]
        return versions[-1] if versions else self.lake.version(table)
