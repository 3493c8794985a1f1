"""What the dashboard shows of a model in use: drift and metrics over batches (monitoring
records), alerts and quarantined batches, and the prediction log's volume and latency.
Read-only, like `data`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from esteira.lake import QUARANTINE_TABLE
from esteira.monitoring.drift import counted, severity
from esteira.monitoring.monitor import PREDICTION
from esteira.monitoring.performance import key_metric

if TYPE_CHECKING:
    from esteira.dashboard.data import Environment
    from esteira.metadata import Alert, MonitoringRecord

MAX_BUCKETS = 48
"""Most bars of the prediction log's volume: hours, or days over a longer span."""


@dataclass(frozen=True)
class DriftCell:
    column: str
    batch: str
    test: str
    value: float
    threshold: float
    drifted: bool
    counted: bool

    @property
    def level(self) -> float:
        """The figure against its limit: above 1 is drifted, whatever the test."""
        return severity({"test": self.test, "value": self.value, "threshold": self.threshold})


@dataclass(frozen=True)
class Monitoring:
    """A model's monitoring records, oldest first, as the charts draw them."""

    records: Sequence[MonitoringRecord]
    metric: str
    columns: list[str]
    """The monitored columns, features first and the prediction last."""
    batches: list[str]
    """One label per record (its batch, and its version where the version changed)."""
    cells: list[DriftCell]
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The newest record's metrics per segment."""

    def metric_values(self) -> list[float | None]:
        return [r.metrics.get(self.metric) for r in self.records]

    def drift_shares(self) -> list[float | None]:
        return [r.drift_share for r in self.records]


@dataclass(frozen=True)
class Quarantined:
    table: str
    batch: str
    rows: int
    at: datetime
    reasons: str
    run_id: str


@dataclass(frozen=True)
class Traffic:
    """The prediction log of one model: requests per period and their latency."""

    table: str
    requests: int
    rows: int
    errors: int
    shadow_rows: int
    versions: dict[str, int]
    """Requests answered per version (not as a shadow)."""
    period: str
    """What a bucket is: "minute", "hour" or "day"."""
    buckets: list[str]
    volume: list[float]
    p50_ms: list[float | None]
    p99_ms: list[float | None]
    overall_ms: tuple[float, float] | None = None
    """p50 and p99 of every request's latency."""
    first: datetime | None = None
    last: datetime | None = None


def monitoring(env: Environment, model: str, limit: int = 36) -> Monitoring | None:
    """The newest `limit` monitoring records of `model`, or None when there is none."""
    store = env.metadata
    records = list(reversed(store.monitoring_history(model, limit))) if store else []
    if not records:
        return None
    metric = key_metric(env.settings.ct.metric, records[-1])
    batches = _batch_labels(records)
    columns: list[str] = []
    cells = []
    for record, batch in zip(records, batches, strict=True):
        for column, found in record.drifted.items():
            if "test" not in found:
                continue
            if column not in columns:
                columns.append(column)
            cells.append(DriftCell(column, batch, found["test"], float(found["value"]),
                                   float(found["threshold"]), bool(found["drifted"]),
                                   counted(found)))  # fmt: skip
    columns.sort(key=lambda c: c == PREDICTION)  # the prediction last, features as recorded
    return Monitoring(records, metric, columns, batches, cells,
                      records[-1].metrics.get("segments") or {})  # fmt: skip


def _batch_labels(records: Sequence[MonitoringRecord]) -> list[str]:
    """A label per record: its batch, with the version where it differs from the record
    before (a new champion); a label already taken gets the record's number."""
    labels: list[str] = []
    for i, record in enumerate(records):
        label = str(record.batch)
        if i and record.version != records[i - 1].version:
            label += f" v{record.version}"
        if label in labels:
            label += f" #{record.id}"
        labels.append(label)
    return labels


def alerts(env: Environment, limit: int = 50) -> Sequence[Alert]:
    return env.metadata.alerts(limit=limit) if env.metadata else []


def quarantined(env: Environment) -> list[Quarantined]:
    """The batches held in quarantine, newest first."""
    lake = env.project.lake
    if not lake.exists(QUARANTINE_TABLE):
        return []
    columns = ["table", "batch", "quarantined_at", "run_id", "reasons"]
    held, _ = lake.read(QUARANTINE_TABLE, columns=columns)
    if held.empty:
        return []
    grouped = held.groupby(["table", "batch", "run_id"], sort=False).agg(
        rows=("reasons", "size"), newest=("quarantined_at", "max"), reasons=("reasons", "first")
    )
    found = [
        Quarantined(table, str(batch), int(row["rows"]), row["newest"].to_pydatetime(),
                    row["reasons"], run)
        for (table, batch, run), row in grouped.iterrows()
    ]  # fmt: skip
    return sorted(found, key=lambda q: q.at, reverse=True)


def traffic(env: Environment, model: str) -> Traffic | None:
    """The prediction log's requests per minute, hour or day (as its span asks) and their
    latency; None when the model has no log yet."""
    lake = env.project.lake
    table = f"predictions_{model}"
    if not lake.exists(table):
        return None
    present = {f.name for f in lake.open(table).schema().fields}
    wanted = ["request_id", "at", "version", "latency_ms", "shadow", "error"]
    logged, _ = lake.read(table, columns=[c for c in wanted if c in present])
    if logged.empty:
        return Traffic(table, 0, 0, 0, 0, {}, "hour", [], [], [], [])
    shadow = logged["shadow"].fillna(False).astype(bool)
    answered = logged[~shadow]
    failed = answered.get("error")
    errors = 0 if failed is None else int(answered.loc[failed.fillna("") != "", "request_id"]
                                          .nunique())  # fmt: skip
    requests = answered.groupby("request_id").agg(at=("at", "first"),
                                                  latency_ms=("latency_ms", "first"),
                                                  version=("version", "first"))  # fmt: skip
    first, last = requests["at"].min(), requests["at"].max()
    period, freq, form = _period(last - first)
    by = requests.groupby(requests["at"].dt.floor(freq))["latency_ms"]
    volume, p50, p99 = by.size(), by.quantile(0.5), by.quantile(0.99)
    keep = volume.index[-MAX_BUCKETS:]
    return Traffic(
        table=table,
        requests=len(requests),
        rows=len(answered),
        errors=errors,
        shadow_rows=int(shadow.sum()),
        versions={str(v): int(n) for v, n in requests["version"].value_counts().items()},
        period=period,
        buckets=[f"{t:{form}}" for t in keep],
        volume=[float(volume[t]) for t in keep],
        p50_ms=[float(p50[t]) for t in keep],
        p99_ms=[float(p99[t]) for t in keep],
        overall_ms=(float(requests["latency_ms"].quantile(0.5)),
                    float(requests["latency_ms"].quantile(0.99))),
        first=first.to_pydatetime(),
        last=last.to_pydatetime(),
    )


def _period(span: Any) -> tuple[str, str, str]:
    """The bucket for a log spanning `span`: minutes up to two hours, hours up to two
    days, else days (name, pandas frequency, label format)."""
    import pandas as pd

    if span <= pd.Timedelta(hours=2):
        return "minute", "min", "%H:%M"
    if span <= pd.Timedelta(days=2):
        return "hour", "h", "%m-%d %H:00"
    return "day", "D", "%Y-%m-%d"
