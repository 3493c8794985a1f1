"""Batch prediction: score a lake table in chunks of `chunk_rows` rows, whatever its files,
and append each chunk's predictions (one commit), with the model version, the input table's
version and the time, to an output table. Appending (never overwriting) keeps the history
that monitoring compares over time. It runs under the thread budget of steps (`runtime`).

A table of events that carries only the fields of the model's feature service (departures,
without weather) gets its features from the offline store, as of each event's time: what
training would have seen, where a request gets the online store's latest values."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esteira.errors import EsteiraError
from esteira.runtime import thread_budget, training_threads

if TYPE_CHECKING:
    import pyarrow as pa

    from esteira.models import LoadedModel
    from esteira.project import Project


@dataclass(frozen=True)
class BatchPrediction:
    run_id: str
    model: str
    version: str
    input_table: str
    input_version: int
    output_table: str
    output_version: int
    rows: int
    seconds: float


@dataclass(frozen=True)
class ScoringPlan:
    """What scoring a table takes, whatever the engine: the model, the input's columns to
    read (the model's inputs, or its feature service's fields to look features up from),
    and those to carry over."""

    loaded: LoadedModel
    input_version: int
    reads: list[str]
    keep: list[str]
    lookup: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def lineage(self, input_table: str) -> dict[str, Any]:
        """The columns every scored row carries besides its prediction, in their order."""
        return {
            "model": self.loaded.name,
            "model_version": self.loaded.version,
            "input_table": input_table,
            "input_version": self.input_version,
            "prediction_run": self.run_id,
        }


def plan_scoring(
    project: Project,
    model: str,
    input_table: str,
    has: list[str],
    input_version: int,
    alias: str = "champion",
    version: str | None = None,
    keep: list[str] | None = None,
) -> ScoringPlan:
    """The plan to score `input_table` (whose columns are `has`) with `model`."""
    from esteira.models import load
    from esteira.registry import Registry

    if version is None:
        found = Registry(project).by_alias(model, alias)
        if found is None:
            raise EsteiraError(f"'{model}' has no '{alias}'; pass --version or promote one")
        version = found.version
    loaded = load(project, model, version, alias)
    names = loaded.input_names
    missing = [n for n in names if n not in has]
    service = loaded.service
    lookup = bool(missing) and service is not None and set(service.fields) <= set(has)
    if missing and not lookup:
        fields = f" (or its feature service's fields {service.fields})" if service else ""
        raise EsteiraError(
            f"table '{input_table}' lacks the model's inputs {missing}{fields}; it has {has}"
        )
    reads = list(service.fields) if lookup and service else names
    kept = [k for k in (keep or []) if k in has and k not in reads]
    return ScoringPlan(loaded, input_version, reads, kept, lookup)


def record_scoring(
    project: Project, plan: ScoringPlan, input_table: str, output_table: str,
    output_version: int, rows: int, started: float,
) -> BatchPrediction:  # fmt: skip
    """The lineage of a scored table, stored in the metadata."""
    from esteira.metadata import BatchPredictionRecord

    result = BatchPrediction(
        plan.run_id, plan.loaded.name, plan.loaded.version, input_table, plan.input_version,
        output_table, output_version, rows, time.perf_counter() - started,
    )  # fmt: skip
    project.metadata.add(BatchPredictionRecord(**asdict(result)))
    return result


def predict_table(
    project: Project,
    model: str,
    input_table: str,
    output_table: str,
    alias: str = "champion",
    version: str | None = None,
    chunk_rows: int = 50_000,
    keep: list[str] | None = None,
    on_chunk: Callable[[int, int], None] = lambda done, total: None,
) -> BatchPrediction:
    """Score `input_table` (as of its current version) with `model`; returns the lineage."""
    from esteira.serving.requests import model_frame

    if chunk_rows < 1:
        raise EsteiraError(f"chunk_rows must be at least 1, not {chunk_rows}")
    started = time.perf_counter()
    table = project.lake.open(input_table)
    dataset = table.to_pyarrow_dataset()
    plan = plan_scoring(project, model, input_table, dataset.schema.names, table.version(),
                        alias, version, keep)  # fmt: skip
    loaded, service = plan.loaded, plan.loaded.service
    total, done, output_version = dataset.count_rows(), 0, -1
    batches = dataset.to_batches(columns=[*plan.keep, *plan.reads], batch_size=chunk_rows)
    with thread_budget(training_threads(project.settings.runtime.threads)):
        for chunk in rechunk(batches, chunk_rows):
            frame = chunk.to_pandas()
            if plan.lookup and service:
                inputs = model_frame(project.features.training_set(frame, service), loaded.columns)
            else:
                inputs = frame[loaded.input_names]
            frame["prediction"] = loaded.predict(inputs)
            for name, value in plan.lineage(input_table).items():
                frame[name] = value
            frame["predicted_at"] = datetime.now(UTC)
            output_version = project.lake.append(output_table, frame)
            done += len(frame)
            on_chunk(done, total)
    return record_scoring(project, plan, input_table, output_table, output_version, done, started)


def rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The rows of `batches`, in order, as tables of exactly `rows` rows (the last may have
    fewer): a dataset yields at most one file per batch, so its batches follow its files."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)
