"""`esteira monitor`: pick the data (the prediction log, or any lake table), monitor it
against the serving version's training data, store the record and write the HTML report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.errors import EsteiraError
from esteira.monitoring.monitor import monitor_batch, reference_profile
from esteira.monitoring.report import render

if TYPE_CHECKING:
    import pandas as pd

    from esteira.metadata import MonitoringRecord
    from esteira.project import Project


@dataclass
class MonitorResult:
    record: MonitoringRecord
    report: Path


def prediction_log(
    project: Project, model: str, since: timedelta | None, labels: str | None
) -> pd.DataFrame:
    """The served rows of `model` (not shadow), features expanded, labels joined by request."""
    import pandas as pd

    table = f"predictions_{model}"
    if not project.lake.exists(table):
        raise EsteiraError(f"no prediction log '{table}' yet: serve the model, or pass --input")
    logged, _ = project.lake.read(table, filters=[("shadow", "=", False)])
    if since is not None:
        logged = logged[logged["at"] >= pd.Timestamp(datetime.now(UTC) - since)]
    if logged.empty:
        raise EsteiraError(f"the prediction log '{table}' has no rows in that window")
    features = pd.DataFrame.from_records([json.loads(f) for f in logged["features"]])
    frame = pd.concat([logged[["request_id", "row", "at", "version"]].reset_index(drop=True),
                       features], axis=1)  # fmt: skip
    if labels:
        truth, _ = project.lake.read(labels)
        keys = [k for k in ("request_id", "row") if k in truth.columns]
        if "request_id" not in keys:
            raise EsteiraError(f"labels table '{labels}' needs a request_id column to join on")
        frame = frame.merge(truth, on=keys, how="left")
    return frame


def run_monitor(
    project: Project,
    model: str,
    version: str | None = None,
    table: str | None = None,
    batch: str | None = None,
    since: timedelta | None = None,
    labels: str | None = None,
    report: Path | None = None,
) -> MonitorResult:
    from esteira.registry import CHAMPION, Registry

    ct = project.settings.ct
    if version is None:
        champion = Registry(project).by_alias(model, CHAMPION)
        if champion is None:
            raise EsteiraError(f"'{model}' has no champion; pass --version")
        version = champion.version
    if table:
        filters = [(ct.batch_column, "=", batch)] if batch else None
        data, table_version = project.lake.read(table, filters=filters)
        name = f"{table}@v{table_version}" + (f" batch {batch}" if batch else "")
    else:
        data = prediction_log(project, model, since, labels)
        name = "prediction log" + (f", last {since}" if since else "")
    reference = reference_profile(project, model, version, ct.reference_output)
    segment = project.settings.gates.segment
    record, predictions = monitor_batch(
        project, model, version, batch or name, data, ct.label, reference, "monitor", segment
    )
    history = list(reversed(project.metadata.monitoring_history(model, limit=36)))
    import pandas as pd

    page = render(record, reference, data, pd.Series(predictions), history, ct.metric)
    path = report or project.settings.home / "reports" / (
        f"monitor-{model}-v{version}-{datetime.now(UTC):%Y%m%d-%H%M%S}.html"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return MonitorResult(record, path)


def parse_window(text: str | None) -> timedelta | None:
    """'90m', '24h', '7d' -> timedelta."""
    if not text:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError):
        raise EsteiraError(f"--since {text!r}: write it as 90m, 24h or 7d") from None
