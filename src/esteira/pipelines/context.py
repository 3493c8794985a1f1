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

from esteira.errors import EsteiraError

if TYPE_CHECKING:
    import pandas as pd

    from esteira.artifacts import ArtifactRef
    from esteira.features import FeatureService, FeatureStore
    from esteira.lake import Lake
    from esteira.project import Project
    from esteira.summaries.profile import Profile
    from esteira.tracking import RegisteredModel, Tracker
    from esteira.validation.data import ValidationReport
    from esteira.validation.history import BatchHistory
    from esteira.validation.model import Decision

VALIDATED = "esteira.validation_report"
"""The commit metadata key of a landed batch: the content hash of the report that passed it."""


@dataclass
class StepRecord:
    """What a running step has done so far, flushed to metadata and MLflow when it ends."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tables: list[tuple[str, str, int]] = field(default_factory=list)  # (mode, table, version)
    models: list[RegisteredModel] = field(default_factory=list)
    reports: dict[str, ArtifactRef] = field(default_factory=dict)  # e.g. validation reports


class Context:
    """Passed to any step that has a `ctx` argument."""

    def __init__(
        self,
        project: Project,
        pipeline: str,
        step: str,
        run_id: str,
        step_run_id: str,
        mlflow_run: Callable[[], str],
        lineage_tags: Callable[[], dict[str, str]],
    ) -> None:
        self.project = project
        self.pipeline = pipeline
        self.step = step
        self.run_id = run_id
        self.step_run_id = step_run_id
        self.record = StepRecord()
        self._mlflow_run = mlflow_run
        self._lineage_tags = lineage_tags
        self._landings: dict[str, dict[str | None, dict[str, Any]]] = {}  # table -> landed
        self._validated: dict[tuple[str, str, str], ArtifactRef] = {}  # passing reports

    def _landed(self, table: str) -> dict[str | None, dict[str, Any]]:
        if table not in self._landings:
            self._landings[table] = self.lake.landed(table)
        return self._landings[table]

    @property
    def lake(self) -> Lake:
        return self.project.lake

    @property
    def features(self) -> FeatureStore:
        """The project's feature store; what it reads and writes is recorded on this step."""
        from esteira.features import FeatureStore

        store = self.project.features
        return FeatureStore(
            store.views,
            self.lake,
            store.online_path,
            read=self.read_table,
            write=lambda table, df: self.replace_table(table, df),
        )

    @property
    def _tracker(self) -> Tracker:
        return self.project.tracker

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
        alias: str | None = None,
        features: FeatureService | None = None,
    ) -> RegisteredModel:
        """Log a model to MLflow with signature and requirements, and register it with tags
        that link it to this run, its code version and the data versions it came from;
        `alias` (e.g. "challenger") is then pointed at the new version. With `features`, the
        feature service it was trained through: served, it then also takes requests that
        carry only the service's request fields. The version records its task (`[model]
        task`, else the model's: a classifier's classes, or a regressor)."""
        from esteira.metrics import TASK_TAG, registered_task

        all_tags = {**self._lineage_tags(), "esteira.step": self.step, **(tags or {})}
        if features is not None:
            all_tags |= features.tags
        output = getattr(model, predict_fn)(input_example)
        all_tags[TASK_TAG] = registered_task(self.project.settings.model.task, model, output)
        registered = self._tracker.log_model(
            self.mlflow_run_id, model, register_as, input_example, predict_fn, all_tags
        )
        self.record.models.append(registered)
        if alias and register_as:
            self.promote(register_as, registered.version, f"registered by run {self.run_id}", alias)
        return registered

    # model validation and promotion ----------------------------------------------------

    def validate_model(self, name: str, version: str, test: pd.DataFrame, label: str) -> Decision:
        """Judge a registered version against the gates and the champion on `test`
        (`[gates]` in esteira.toml); the decision and its figures are stored."""
        from esteira.validation.model import decide

        decision = decide(self.project, name, version, test, label, self.run_id)
        self.log_metrics({"gates.passed": float(decision.passed)})
        return decision

    def held_for(self, alias: str = "champion") -> str | None:
        """What moving `alias` in this environment waits for: "cd" (staging), "approval"
        (prod), or None (the gates suffice: dev)."""
        from esteira.registry import Registry

        return Registry(self.project).held_for(alias)

    def promote(self, name: str, version: str, reason: str, alias: str = "champion") -> None:
        """Point `alias` of `name` at `version`, recorded with this run as the actor's context."""
        from esteira.registry import Registry

        Registry(self.project).promote(name, version, reason, alias, pipeline_run_id=self.run_id)

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
        self._landings.pop(table, None)
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
        self._landings.pop(table, None)
        return version

    # landing batches -----------------------------------------------------------------

    def landed(self, df: pd.DataFrame, table: str, batch: str, batch_column: str = "batch") -> bool:
        """Whether `df` is in the lake already as `batch` of `table` (the whole table, for
        rows without `batch_column`): exactly these rows, landed by `land_batch` after they
        passed `validate_batch`, changed by nothing since (`Lake.landed`). Such a batch need
        be neither validated nor written again: the report that passed it is recorded on
        this step run and its figures go to MLflow, as `validate_batch` records its own, so
        the run still shows every batch it took as validated. False (new rows, rows that
        changed, a batch never landed this way): validate it, then land it.

        An ingest that lands a window of batches on every run thus validates and writes
        only what is new or was delivered again changed."""
        from esteira.lake import FINGERPRINT, fingerprint
        from esteira.validation.data import ValidationReport

        found = self._landed(table).get(None if batch_column not in df else str(batch))
        if not found or not found.get(VALIDATED) or found[FINGERPRINT] != fingerprint(df):
            return False
        ref = self.project.artifacts.find(found[VALIDATED], "json")
        try:
            stored = self.project.artifacts.load(ref) if ref is not None else {}
        except EsteiraError:  # the report was damaged: validated again
            return False
        if not stored.get("passed") or stored.get("fingerprint") != found[FINGERPRINT]:
            return False
        if stored.get("reference_rows"):  # compared with earlier batches: it has figures
            report = ValidationReport.from_dict(stored)
            self.log_metrics({f"{table}.{k}": v for k, v in report.metrics().items()})
        self.record.reports[f"validation/{table}/{batch}"] = ref
        return True

    def land_batch(
        self,
        df: pd.DataFrame,
        table: str,
        batch: str,
        batch_column: str = "batch",
        partition_by: list[str] | None = None,
    ) -> int:
        """Write `df` as `batch` of `table`, replacing that batch's rows (the whole table,
        for rows without `batch_column`); the Delta commit records the rows' fingerprint and
        the report with which `validate_batch` passed them in this step, so later runs can
        tell that the batch landed unchanged (`landed`). Returns the table's new version."""
        from esteira.lake import fingerprint

        whole = batch_column not in df
        content = fingerprint(df)
        report = self._validated.get((table, str(batch), content))
        version = self.lake.land(
            table,
            df,
            None if whole else batch,
            batch_column,
            partition_by,
            content,
            {VALIDATED: report.hash} if report is not None else {},
        )
        self.record.tables.append(("write", table, version))
        self._landings.pop(table, None)
        return version

    # data validation -----------------------------------------------------------------

    def validate_batch(
        self,
        df: pd.DataFrame,
        table: str,
        batch: str,
        batch_column: str = "batch",
        reference: Profile | None = None,
        label: str | None = None,
        pending: pd.DataFrame | None = None,
    ) -> ValidationReport:
        """Validate a new batch of `table` before it lands.

        The reference is the profile of the table's last `reference_batches` batches before
        this one (`[validation]` in esteira.toml), or `reference`; every earlier batch gives
        the history a batch is judged by as well (row counts, where means may lie after a
        gap, spreads, signs, periods). With `label` (by default `[ct] label`, when the batch
        has that column) the label is checked too: not constant, classes in proportion, no
        column that suddenly predicts it. `pending`: rows of batches validated but not landed
        yet (a run's earlier batches, when it lands them all only once all passed), taken as
        if they were in the table. The figures go to MLflow.
        A failing batch is kept in the lake's quarantine table, an alert is recorded, and
        `DataValidationError` stops the step, so nothing downstream (training) runs on it.
        A table's first batch has nothing to be compared with and passes (on record). A table
        without `batch_column` (replaced whole, such as a register) is compared with the rows
        it is about to replace.
        """
        from esteira.lake import QUARANTINE_TABLE, fingerprint
        from esteira.validation.data import DataValidationError, ValidationReport, validate

        config = self.project.settings.validation
        default_label = self.project.settings.ct.label
        label = label or (default_label if default_label in df.columns else None)
        history = None
        if reference is None:
            found = self._reference(table, batch_column, batch, config.reference_batches, label,
                                    pending)  # fmt: skip
            reference, history = found or (None, None)
        if reference is None:  # still on record: the battery checks every ingest validated
            report = ValidationReport(len(df), 0)
        else:
            batch_rows = df.drop(columns=[batch_column], errors="ignore")
            report = validate(batch_rows, reference, config, history)
            self.log_metrics({f"{table}.{k}": v for k, v in report.metrics().items()})
        content = fingerprint(df)  # what was validated: `land_batch` records it landed
        stored = self.project.artifacts.save(
            report.to_dict() | {"table": table, "batch": batch, "fingerprint": content}
        )
        self.record.reports[f"validation/{table}/{batch}"] = stored
        if report.passed:
            self._validated[(table, str(batch), content)] = stored
            return report
        held = self.lake.quarantine(table, df, batch, report.reasons(), self.run_id)
        self.record.tables.append(("write", QUARANTINE_TABLE, held))
        self.project.metadata.add_alert(
            "data_validation",
            f"{table}/{batch}",
            f"batch {batch} of {table} quarantined: " + "; ".join(report.reasons()),
            report.to_dict(),
            self.run_id,
            self.step_run_id,
        )
        raise DataValidationError(f"batch {batch} of {table}", report, QUARANTINE_TABLE)

    def _reference(
        self,
        table: str,
        batch_column: str,
        batch: str,
        how_many: int,
        label: str | None,
        pending: pd.DataFrame | None,
    ) -> tuple[Profile, BatchHistory] | None:
        """The profile of the last `how_many` batches before `batch` and the history of all
        the batches before it (the table's, with `pending` ones over those they replace);
        for a table without batches, of the rows it holds."""
        import pandas as pd

        from esteira.batches import batches_before
        from esteira.validation.history import reference_of, whole_table

        exists = self.lake.exists(table)
        if exists and batch_column not in (f.name for f in self.lake.open(table).schema().fields):
            return whole_table(self.read_table(table), label)
        pending = pending if pending is not None else pd.DataFrame(columns=[batch_column])
        landed = self.lake.read(table, columns=[batch_column])[0] if exists else pending[:0]
        # The distinct labels first: iterating every row's label costs seconds a table.
        present = set(landed[batch_column].dropna().unique())
        present |= set(pending[batch_column].dropna().unique())
        period = self.project.settings.ct.batch_period
        earlier = batches_before(present, batch, period)
        if not earlier:
            return None
        replaced = set(pending[batch_column].unique())
        from_table = [b for b in earlier if b not in replaced]
        parts = [pending[pending[batch_column].isin(earlier)]]
        if from_table:
            parts.insert(0, self.read_table(table, filters=[(batch_column, "in", from_table)]))
        rows = pd.concat([p for p in parts if not p.empty], ignore_index=True)
        return reference_of(rows, batch_column, batch, how_many, period, label)

    def _version_read(self, table: str) -> int | None:
        versions = [v for mode, t, v in self.record.tables if t == table and mode == "read"]
        return versions[-1] if versions else self.lake.version(table)
