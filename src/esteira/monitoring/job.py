"""`esteira monitor`: pick the data (the prediction log, or any lake table), monitor it
against the serving version's training data, store the record and write the HTML report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.errors import EsteiraError
from esteira.models import load
from esteira.monitoring.monitor import monitor_batch, reference_profile
from esteira.monitoring.report import current_counts, render

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import pandas as pd

    from esteira.metadata import MonitoringRecord
    from esteira.project import Project
    from esteira.summaries.profile import Profile


@dataclass
class MonitorResult:
    record: MonitoringRecord
    report: Path


def prediction_log(
    project: Project, model: str, version: str, since: timedelta | None
) -> tuple[pd.DataFrame, list[Any]]:
    """The rows `version` of `model` served (not shadow), with their features expanded, and
    the predictions it answered them with."""
    import pandas as pd

    table = f"predictions_{model}"
    if not project.lake.exists(table):
        raise EsteiraError(f"no prediction log '{table}' yet: serve the model, or pass --input")
    logged, _ = project.lake.read(table, filters=[("shadow", "=", False)])
    if "error" in logged.columns:  # requests the version failed on have no prediction
        logged = logged[logged["error"].fillna("") == ""]
    if since is not None:
        logged = logged[logged["at"] >= pd.Timestamp(datetime.now(UTC) - since)]
    served = logged[logged["version"] == str(version)]
    if served.empty:
        versions = ", ".join(sorted(set(logged["version"]), key=int)) or "none"
        raise EsteiraError(f"the prediction log '{table}' has no rows of version {version} in "
                           f"that window (versions there: {versions}); pass --version")  # fmt: skip
    features = pd.DataFrame.from_records([json.loads(f) for f in served["features"]])
    frame = pd.concat([served[["request_id", "row", "at", "version"]].reset_index(drop=True),
                       features], axis=1)  # fmt: skip
    return frame, [json.loads(p) for p in served["prediction"]]


def join_labels(
    project: Project,
    model: str,
    version: str,
    served: pd.DataFrame,
    labels: str,
    on: list[str] | None = None,
) -> pd.DataFrame:
    """Served rows with the labels of the lake table `labels`, matched on `on`: by default
    the request id (and row) when the labels carry it, else the entity keys and time of
    the feature service the version was trained through (labels of an event arrive with
    the event, not with the request that predicted it)."""
    import pandas as pd

    from esteira.registry import Registry

    truth, _ = project.lake.read(labels)
    label = project.settings.ct.label
    if label not in truth.columns:
        raise EsteiraError(f"labels table '{labels}' has no column '{label}' ([ct] label)")
    if not on and "request_id" in truth.columns:
        on = [k for k in ("request_id", "row") if k in truth.columns]
    if not on:
        service, _ = Registry(project).feature_service(model, version)
        if service is not None and service.at:
            on = service.event_keys
        else:
            raise EsteiraError(
                f"labels table '{labels}' has no request_id; name the columns that identify "
                "an event in both the labels and the served rows with --join-on"
            )
    for side, frame in (("labels table", truth), ("served rows", served)):
        missing = [k for k in on if k not in frame.columns]
        if missing:
            raise EsteiraError(f"the {side} have no column {missing} to join labels on")
    truth = truth[[*on, label]].drop_duplicates(on, keep="last")
    served = served.drop(columns=[label], errors="ignore")
    for key in on:  # times compare as instants, whatever their zone or text form
        if pd.api.types.is_datetime64_any_dtype(truth[key]):
            truth[key] = pd.to_datetime(truth[key], utc=True)
            served[key] = pd.to_datetime(served[key], utc=True, format="ISO8601")
    return served.merge(truth, on=on, how="left")


def run_monitor(
    project: Project,
    model: str,
    version: str | None = None,
    table: str | None = None,
    batch: str | None = None,
    since: timedelta | None = None,
    labels: str | None = None,
    report: Path | None = None,
    join_on: list[str] | None = None,
) -> MonitorResult:
    ct = project.settings.ct
    version = monitored_version(project, model, version)
    served = None  # predictions as answered, when the data is the prediction log
    if table:
        filters = [(ct.batch_column, "=", batch)] if batch else None
        data, table_version = project.lake.read(table, filters=filters)
        name = f"{table}@v{table_version}" + (f" batch {batch}" if batch else "")
        if data.empty:
            raise EsteiraError(empty_message(project, table, batch))
    else:
        data, served = prediction_log(project, model, version, since)
        name = "prediction log" + (f", last {since}" if since else "")
    if labels:
        data = join_labels(project, model, version, data, labels, join_on)
    loaded = load(project, model, version)  # once, for the reference and the batch
    missing = [c for c in loaded.input_names if c not in data.columns]
    if missing:
        raise EsteiraError(
            f"{name} lacks inputs of {model} version {version}: {', '.join(missing)}; monitor "
            f"a table of the model's inputs (such as the features a pipeline keeps), or the "
            "prediction log (no --input)"
        )
    reference = reference_profile(project, model, version, ct.reference_output, loaded)
    segment = project.settings.gates.segment
    record, predictions = monitor_batch(project, model, version, batch or name, data, ct.label,
                                        reference, "monitor", segment, served, loaded)  # fmt: skip
    import pandas as pd

    counts = current_counts(reference, data[loaded.input_names], pd.Series(predictions))
    return MonitorResult(record, write_report(project, record, reference, counts, report))


def monitored_version(project: Project, model: str, version: str | None) -> str:
    """`version`, else the champion's."""
    from esteira.registry import CHAMPION, Registry

    if version is not None:
        return version
    champion = Registry(project).by_alias(model, CHAMPION)
    if champion is None:
        raise EsteiraError(f"'{model}' has no champion; pass --version")
    return champion.version


def write_report(
    project: Project,
    record: MonitoringRecord,
    reference: Profile,
    current: Mapping[str, np.ndarray],
    path: Path | None = None,
) -> Path:
    """The record's HTML report, with the model's history, written whole to `path` (by
    default under the home's reports)."""
    history = list(reversed(project.metadata.monitoring_history(record.model, limit=36)))
    page = render(record, reference, current, history, project.settings.ct.metric)
    path = path or project.settings.home / "reports" / (
        f"monitor-{record.model}-v{record.version}-{datetime.now(UTC):%Y%m%d-%H%M%S}.html"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def empty_message(project: Project, table: str, batch: str | None) -> str:
    """Why there is nothing to monitor: the table is empty, or which batches it has."""
    if not batch:
        return f"lake table '{table}' has no rows to monitor"
    column = project.settings.ct.batch_column
    try:
        present, _ = project.lake.read(table, columns=[column])
        known = ", ".join(sorted(map(str, present[column].dropna().unique()))[-12:]) or "none"
    except Exception:  # the table has no batch column: say so rather than list
        known = f"none: it has no '{column}' column ([ct] batch_column)"
    return f"lake table '{table}' has no rows of batch {batch} (batches: {known})"


def parse_window(text: str | None) -> timedelta | None:
    """'90m', '24h', '7d' -> timedelta."""
    if not text:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError):
        raise EsteiraError(f"--since {text!r}: write it as 90m, 24h or 7d") from None
