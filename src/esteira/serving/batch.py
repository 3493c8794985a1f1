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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from esteira.errors import EsteiraError
from esteira.runtime import thread_budget, training_threads

if TYPE_CHECKING:
    import pyarrow as pa

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
    from esteira.metadata import BatchPredictionRecord
    from esteira.models import load
    from esteira.registry import Registry
    from esteira.serving.requests import model_frame

    if chunk_rows < 1:
        raise EsteiraError(f"chunk_rows must be at least 1, not {chunk_rows}")
    started = time.perf_counter()
    if version is None:
        found = Registry(project).by_alias(model, alias)
        if found is None:
            raise EsteiraError(f"'{model}' has no '{alias}'; pass --version or promote one")
        version = found.version
    loaded = load(project, model, version, alias)
    table = project.lake.open(input_table)
    input_version = table.version()
    dataset = table.to_pyarrow_dataset()
    has = dataset.schema.names
    names = [c.name for c in loaded.columns]
    missing = [n for n in names if n not in has]
    service = loaded.service
    lookup = bool(missing) and service is not None and set(service.fields) <= set(has)
    if missing and not lookup:
        fields = f" (or its feature service's fields {service.fields})" if service else ""
        raise EsteiraError(
            f"table '{input_table}' lacks the model's inputs {missing}{fields}; it has {has}"
        )
    reads = service.fields if lookup and service else names
    keep = [k for k in (keep or []) if k in has and k not in reads]
    run_id, total, done, output_version = uuid.uuid4().hex, dataset.count_rows(), 0, -1
    batches = dataset.to_batches(columns=[*keep, *reads], batch_size=chunk_rows)
    with thread_budget(training_threads(project.settings.runtime.threads)):
        for chunk in rechunk(batches, chunk_rows):
            frame = chunk.to_pandas()
            if lookup and service:
                inputs = model_frame(project.features.training_set(frame, service), loaded.columns)
            else:
                inputs = frame[names]
            frame["prediction"] = loaded.predict(inputs)
            frame["model"], frame["model_version"] = model, str(version)
            frame["input_table"], frame["input_version"] = input_table, input_version
            frame["prediction_run"], frame["predicted_at"] = run_id, datetime.now(UTC)
            output_version = project.lake.append(output_table, frame)
            done += len(frame)
            on_chunk(done, total)
    result = BatchPrediction(
        run_id, model, str(version), input_table, input_version, output_table, output_version,
        done, time.perf_counter() - started,
    )  # fmt: skip
    project.metadata.add(BatchPredictionRecord(**asdict(result)))
    return result


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
