"""Model validation gates: may this challenger replace the champion?

Evidence is gathered once: challenger and champion, both loaded from the registry, score
the same (newest) test data once each (segments are slices of those scores), and the
challenger is loaded again in a fresh process, started first so that it loads while they
score, to predict its input example within a latency budget. They are judged on
the metric of the challenger's task (`[gates] metric`, else binary roc_auc, multiclass
log_loss, regression rmse). Each gate is a function from that evidence to a check that
passed or failed, with its reason; the decision is stored with the figures behind it. Gates
are on by default: with no champion yet, the comparison gates pass and say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.config import GatesConfig
from esteira.errors import EsteiraError
from esteira.metadata import GateDecision
from esteira.metrics import Scores, check_fits, metric, resolve_metric, score, why_undefined
from esteira.runtime import thread_budget, training_threads
from esteira.validation.compatibility import (
    check_compatibility,
    compatibility_gate,
    start_compatibility,
)
from esteira.validation.decision import Check, Decision, Evidence, Gate

if TYPE_CHECKING:
    import pandas as pd

    from esteira.project import Project


def thresholds_gate(e: Evidence, config: GatesConfig) -> Check:
    failures = []
    for name, limit in config.thresholds.items():
        m = metric(name)
        value = e.challenger.get(name)
        if value is None:
            failures.append(f"{name} could not be computed: {e.undefined.get(name, '?')}")
        elif m.worse_by(value, limit) > 0:
            failures.append(f"{name} {value:.4f} is {m.worse_side} the limit {limit}")
    reason = "; ".join(failures) or (
        "all within limits" if config.thresholds else "no absolute thresholds set"
    )
    return Check("thresholds", not failures, reason, {"limits": config.thresholds})


def champion_gate(e: Evidence, config: GatesConfig) -> Check:
    name = e.metric
    if e.champion is None and e.champion_task not in (None, e.task):
        reason = (
            f"champion v{e.champion_version} is a {e.champion_task} model and this one "
            f"{e.task}: they cannot be compared; if the task changed on purpose, promote it "
            "by hand (esteira promote)"
        )
        return Check("versus_champion", False, reason)
    if name not in e.challenger:  # no figure to judge it by, now or against later versions
        why = e.undefined.get(name, "not defined on the test data")
        return Check("versus_champion", False, f"{name} could not be computed: {why}")
    if e.champion is None:
        return Check("versus_champion", True, "no champion yet: nothing to compare with")
    ours, theirs = e.challenger[name], e.champion.get(name)
    if theirs is None:
        reason = f"{name} of champion v{e.champion_version} could not be computed on the test data"
        return Check("versus_champion", False, reason)
    worse = metric(name).worse_by(ours, theirs)
    # The tolerance is one budget for a chain of promotions, each a little worse than the
    # one before, not a fresh allowance each time: the champion would slide without bound.
    allowed = max(0.0, config.tolerance - e.tolerance_spent)
    figures = {
        "metric": name,
        "challenger": ours,
        "champion": theirs,
        "tolerance": config.tolerance,
        "tolerance_spent": max(0.0, e.tolerance_spent + worse),  # carried if promoted
    }
    text = f"{name} {ours:.4f} vs champion v{e.champion_version} {theirs:.4f}"
    if worse > allowed:
        why = f"{text}: worse by {worse:.4f}"
        if e.tolerance_spent > 0:
            why += (f" (tolerance {config.tolerance:g}, of which v{e.champion_version} and "
                    f"those it replaced within it took {e.tolerance_spent:.4f})")  # fmt: skip
        return Check("versus_champion", False, why, figures)
    return Check("versus_champion", True, text, figures)


def segment_gate(e: Evidence, config: GatesConfig) -> Check:
    if config.segment is None:
        return Check("segments", True, "no segment column set")
    if e.champion is None:
        return Check("segments", True, "no champion yet: nothing to compare with")
    m = metric(e.metric)
    behind = {
        seg: f["challenger"] - f["champion"]
        for seg, f in e.segments.items()
        if f["champion"] is not None
        and f["challenger"] is not None
        and m.worse_by(f["challenger"], f["champion"]) > config.segment_tolerance
    }
    figures = {"segment": config.segment, "segments": e.segments}
    if behind:
        listed = ", ".join(f"{seg} ({gap:+.4f})" for seg, gap in sorted(behind.items()))
        reason = f"{e.metric} behind the champion by more than {config.segment_tolerance}"
        return Check("segments", False, f"{reason} in {listed}", figures)
    return Check("segments", True, f"no {config.segment} falls behind the champion", figures)


GATES: list[Gate] = [thresholds_gate, champion_gate, segment_gate, compatibility_gate]


def decide(
    project: Project,
    name: str,
    version: str,
    test: pd.DataFrame,
    label: str,
    pipeline_run_id: str | None = None,
    config: GatesConfig | None = None,
) -> Decision:
    """Judge `version` of model `name` on `test` (with its `label` column); record it."""
    config = config or project.settings.gates
    evidence = gather(project, name, version, test, label, config)
    checks = [g(evidence, config) for g in GATES]
    decision = Decision(name, version, evidence.champion_version, checks, evidence.task,
                        evidence.metric, evidence.challenger)  # fmt: skip
    project.metadata.add(
        GateDecision(
            model=name,
            version=version,
            champion_version=evidence.champion_version,
            passed=decision.passed,
            summary=decision.summary(),
            checks=decision.to_dict(),
            pipeline_run_id=pipeline_run_id,
        )
    )
    if not decision.passed:
        project.metadata.add_alert(
            "gate", f"{name}/{version}", decision.summary(), decision.to_dict(), pipeline_run_id
        )
    return decision


def gather(
    project: Project, name: str, version: str, test: pd.DataFrame, label: str, config: GatesConfig
) -> Evidence:
    if label not in test.columns:
        raise EsteiraError(f"the test data has no label column '{label}'")
    # The fresh process of the compatibility check imports and loads while the test data is
    # scored here; it times its calls afterwards, when this process only waits.
    uri = f"models:/{name}/{version}"
    fresh = start_compatibility(project, uri) if config.check_compatibility else None
    try:
        evidence = _scored(project, name, version, test, label, config)
        if fresh is not None:
            evidence.compatibility = check_compatibility(project, uri, config, started=fresh)
    finally:
        if fresh is not None:
            fresh.cancel()
    return evidence


def _scored(
    project: Project, name: str, version: str, test: pd.DataFrame, label: str, config: GatesConfig
) -> Evidence:
    """The evidence of the challenger and the champion scoring `test`, each once."""
    from esteira.registry import CHAMPION, Registry

    champion = Registry(project).by_alias(name, CHAMPION)
    champion_version = champion.version if champion and champion.version != str(version) else None
    with thread_budget(training_threads(project.settings.runtime.threads)):
        ours = predict_scores(project, name, version, test)
        theirs = predict_scores(project, name, champion_version, test) if champion_version else None
    key = resolve_metric(config.metric, ours.task, "[gates] metric")
    for limit in config.thresholds:
        check_fits(limit, ours.task, f"[gates] thresholds.{limit}")
    names = [key, *config.thresholds]
    threshold = project.settings.model.threshold
    y = test[label].to_numpy()
    comparable = theirs is not None and theirs.task == ours.task
    evidence = Evidence(
        name,
        str(version),
        champion_version,
        len(test),
        ours.task,
        key,
        score(names, y, ours, threshold),
        score(names, y, theirs, threshold) if comparable else None,
        theirs.task if theirs is not None else None,
    )
    evidence.undefined = {
        n: why_undefined(n, y, ours) for n in names if n not in evidence.challenger
    }
    if champion_version is not None:
        evidence.tolerance_spent = _tolerance_spent(project, name, champion_version)
    if config.segment and comparable:
        evidence.segments = _segments(test, config, key, threshold, y, ours, theirs)
    return evidence


def _tolerance_spent(project: Project, name: str, champion: str) -> float:
    """What the champion's own passing gate decision carried (0 if it had none here)."""
    decisions = project.metadata.gate_decisions(name, version=champion, passed=True, limit=1)
    checks = decisions[0].checks.get("checks", []) if decisions else []
    found = [c for c in checks if c.get("name") == "versus_champion"]
    return float(found[0].get("figures", {}).get("tolerance_spent", 0.0)) if found else 0.0


def _segments(
    test: pd.DataFrame,
    config: GatesConfig,
    key: str,
    threshold: float,
    y: np.ndarray,
    ours: Scores,
    theirs: Scores,
) -> dict[str, dict[str, Any]]:
    if config.segment not in test.columns:
        raise EsteiraError(f"the test data has no segment column '{config.segment}'")
    out: dict[str, dict[str, Any]] = {}
    for value, index in test.groupby(config.segment).indices.items():
        if len(index) < config.min_segment_rows:
            continue
        a = score([key], y[index], ours.rows(index), threshold).get(key)
        b = score([key], y[index], theirs.rows(index), threshold).get(key)
        out[str(value)] = {"rows": len(index), "challenger": a, "champion": b}
    return out


def predict_scores(project: Project, name: str, version: str, test: pd.DataFrame) -> Scores:
    from esteira.models import load

    model = load(project, name, version)
    return model.scores(test[model.input_names])
