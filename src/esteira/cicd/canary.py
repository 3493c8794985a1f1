"""Online validation of a canary, `esteira cd canary`: the service answers a stable share of
requests with the canary's version (`esteira serve --canary challenger:10`) and logs which
version answered each; this compares canary and champion on that live log since the canary
began: enough traffic, errors, latency, the distribution of their predictions, and the
task's metric where labels have joined. Then it promotes the canary (with the approval the
environment asks for) or rolls it back by removing its alias, which the service follows,
and records why either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.cicd.cd import CDOutcome, record
from esteira.errors import EsteiraError
from esteira.validation.decision import Check

if TYPE_CHECKING:
    import pandas as pd

    from esteira.config import CDSection
    from esteira.project import Project


class CanaryError(EsteiraError):
    """There is no canary to judge."""


@dataclass
class Served:
    """What one version answered in the window."""

    version: str
    requests: int
    errors: int
    p99_ms: float
    predictions: pd.Series
    """Point predictions of the answered rows (a classifier's: positive score or class)."""
    rows: pd.DataFrame
    """The answered rows with their features, for joining labels."""

    def figures(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "p99_ms": round(self.p99_ms, 2)}  # fmt: skip


def judge_canary(
    root: Path,
    environ: Mapping[str, str] | None = None,
    model: str | None = None,
    alias: str = "challenger",
    since: datetime | None = None,
    labels: str | None = None,
    approve: bool = False,
    reason: str = "",
) -> CDOutcome:
    """Compare the canary (`alias`) with the champion on the prediction log since `since`
    (default: when the alias last moved), record the decision, then promote or retire it."""
    from esteira.project import load_project
    from esteira.registry import CHAMPION, Registry

    project = load_project(root, environ)
    name = model or project.settings.ct.model
    if not name:
        raise CanaryError("give --model (or set [ct] model in esteira.toml)")
    registry = Registry(project)
    canary, champion = registry.by_alias(name, alias), registry.by_alias(name, CHAMPION)
    env = project.settings.env
    if canary is None or champion is None or canary.version == champion.version:
        raise CanaryError(
            f"'{name}' in {env} has no canary to judge: it needs a champion and a different "
            f"{alias} (esteira promote ... --alias {alias}), served with esteira serve "
            f"--canary {alias}:10"
        )
    if since is None:
        moved = [c for c in registry.history(name, alias) if c.to_version == canary.version]
        if not moved:
            raise CanaryError(f"when {alias} began is not on record: pass --since")
        since = moved[-1].at
    outcome = CDOutcome(env, name, canary.version, champion.version, project.settings.release)
    mine = served_by(project, name, canary.version, since)
    theirs = served_by(project, name, champion.version, since)
    outcome.checks = canary_checks(mine, theirs, project.settings.cd)
    if labels and outcome.passed:
        outcome.checks.append(_metric_check(project, name, mine, theirs, labels))
    record(project, outcome, kind="canary")
    if outcome.passed:
        if registry.held_for() == "approval" and not approve:
            outcome.awaiting = "approval"
        else:
            told = reason or outcome.summary()
            registry.promote(name, canary.version, told, approved=approve, cd=True)
            outcome.promoted = True
    else:
        registry.retire(name, alias, reason or outcome.summary())
    return outcome


def served_by(project: Project, model: str, version: str, since: datetime) -> Served:
    """What `version` answered (not as a shadow) since `since`, from the prediction log."""
    import pandas as pd

    table = f"predictions_{model}"
    if not project.lake.exists(table):
        raise CanaryError(f"no prediction log '{table}' yet: serve with esteira serve --canary")
    logged, _ = project.lake.read(table, filters=[("shadow", "=", False)])
    start = pd.Timestamp(since)
    start = start.tz_localize("UTC") if start.tz is None else start  # SQLite keeps no zone
    logged = logged[(logged["version"] == version) & (logged["at"] >= start)]
    # logs written before failed requests were recorded have no error column
    failed = logged.get("error", pd.Series("", index=logged.index)).fillna("") != ""
    per_request = logged.groupby("request_id")["latency_ms"].first()
    answered = logged[~failed]
    rows = pd.DataFrame.from_records([json.loads(f) for f in answered["features"]])
    predictions = pd.Series([_point(json.loads(p)) for p in answered["prediction"]], dtype=object)
    return Served(
        version=version,
        requests=int(per_request.size),
        errors=int(logged.loc[failed, "request_id"].nunique()),
        p99_ms=float(per_request.quantile(0.99)) if per_request.size else float("nan"),
        predictions=predictions,
        rows=rows.assign(request_id=answered["request_id"].to_numpy()),
    )


def canary_checks(mine: Served, theirs: Served, config: CDSection) -> list[Check]:
    """Traffic, errors, latency and prediction drift of the canary against the champion."""
    figures = {"canary": mine.figures(), "champion": theirs.figures()}
    needed = config.canary_min_requests
    if mine.requests < needed:
        told = f"the canary answered {mine.requests} requests, fewer than {needed} to judge by"
        return [Check("canary_traffic", False, told + " ([cd] canary_min_requests)", figures)]
    checks = [Check("canary_traffic", True, f"{mine.requests} requests to the canary, "
                    f"{theirs.requests} to the champion", figures)]  # fmt: skip
    rate, baseline = _rate(mine), _rate(theirs)
    allowed = baseline + config.max_error_rate
    checks.append(Check(
        "canary_errors", rate <= allowed,
        f"{mine.errors} of {mine.requests} requests failed ({rate:.2%}; champion "
        f"{baseline:.2%}, allowed {allowed:.2%})", figures,
    ))  # fmt: skip
    limit = config.max_p99_ratio * theirs.p99_ms + config.p99_slack_ms
    checks.append(Check(
        "canary_latency", bool(mine.p99_ms <= limit),
        f"p99 {mine.p99_ms:.1f} ms against the champion's {theirs.p99_ms:.1f} ms (at most "
        f"{limit:.1f} ms: {config.max_p99_ratio:g}x + {config.p99_slack_ms:g} ms)", figures,
    ))  # fmt: skip
    checks.append(_prediction_drift(mine, theirs))
    return checks


def _prediction_drift(mine: Served, theirs: Served) -> Check:
    """The canary's predictions against the champion's, by the drift test monitoring uses:
    both answer random shares of the same traffic, so their predictions should agree."""
    from esteira.monitoring.drift import column_drift
    from esteira.summaries.profile import profile_column

    found = column_drift(profile_column(_typed(theirs.predictions), "prediction"),
                         _typed(mine.predictions))  # fmt: skip
    if found is None:
        return Check("canary_prediction_drift", True, "no predictions to compare")
    told = f"{found['test']} {found['value']:g} (limit {found['threshold']:g})"
    if found["drifted"]:
        return Check("canary_prediction_drift", False, "predictions differ from the "
                     f"champion's: {told}", found)  # fmt: skip
    return Check("canary_prediction_drift", True, f"predictions agree with the champion's: "
                 f"{told}", found)  # fmt: skip


def _metric_check(project: Project, model: str, mine: Served, theirs: Served, labels: str) -> Check:
    """The task's metric of each on its own labelled requests: the canary may trail the
    champion by `[gates] tolerance` at most."""
    from esteira.metrics import Scores, metric, resolve_metric, score
    from esteira.models import load
    from esteira.monitoring.job import join_labels

    label = project.settings.ct.label
    threshold = project.settings.model.threshold
    found: dict[str, Any] = {}
    for who, served in (("canary", mine), ("champion", theirs)):
        loaded = load(project, model, served.version)
        joined = join_labels(project, model, served.version, served.rows, labels)
        known = joined[joined[label].notna()]
        if len(known) < 2:
            return Check("canary_metric", True, f"too few labelled requests of the {who} yet")
        scores = Scores.of(loaded.task, loaded.predict_raw(known[loaded.input_names]),
                           loaded.classes)  # fmt: skip
        key = resolve_metric(project.settings.gates.metric, loaded.task, "[gates] metric")
        value = score([key], known[label].to_numpy(), scores, threshold).get(key)
        found[who] = {"metric": key, "rows": len(known), "value": value}
    key, a, b = found["canary"]["metric"], found["canary"]["value"], found["champion"]["value"]
    if a is None or b is None:
        return Check("canary_metric", True, f"{key} is not defined on the labelled requests yet",
                     found)  # fmt: skip
    tolerance = project.settings.gates.tolerance
    worse = metric(key).worse_by(a, b)
    told = f"{key} {a:.4g} on {found['canary']['rows']} labelled requests, champion {b:.4g}"
    if worse > tolerance:
        return Check("canary_metric", False, f"{told}: worse by {worse:.4g} (tolerance "
                     f"{tolerance:g})", found)  # fmt: skip
    return Check("canary_metric", True, told, found)


def _rate(served: Served) -> float:
    return served.errors / served.requests if served.requests else 0.0


def _point(prediction: Any) -> Any:
    """A binary classifier's score, a multiclass one's most likely class index, a value."""
    if isinstance(prediction, list):
        return max(range(len(prediction)), key=prediction.__getitem__) if prediction else None
    return prediction


def _typed(values: pd.Series) -> pd.Series:
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    return numeric if numeric.notna().all() else values.astype(str)
