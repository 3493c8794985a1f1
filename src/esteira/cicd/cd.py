"""The CD gates of an environment, `esteira cd --env staging`.

The candidate is a version the release deployed there trained (the newest; when there is
none, the release's pipeline trains one). It must have passed data validation and the model
gates (compatibility included), answer a smoke test from a real service started from the
registry (its input example; a feature-service request where it has one), and hold its own
in a bounded load test against the champion, served beside it and measured in the same run:
relative limits, because absolute times are noise on a shared machine. The decision and
every figure are stored; when all pass, the candidate becomes the environment's champion
(where a person's approval moves it instead, it waits for that).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.cicd.service import LoadFigures, Service, load_test, served
from esteira.errors import EsteiraError
from esteira.validation.decision import Check

if TYPE_CHECKING:
    import pandas as pd

    from esteira.config import CDSection
    from esteira.project import Project
    from esteira.registry import VersionInfo

RELEASE_TAG = "esteira.release"
ROUNDS = 2  # the load alternates between the services, so a burst elsewhere hits both
SMOKE_ROWS = 5

Tell = Callable[[str], None]


class CDError(EsteiraError):
    """The CD gates cannot start: no candidate, no model."""


@dataclass
class CDOutcome:
    environment: str
    model: str
    version: str
    champion_version: str | None
    release: str
    checks: list[Check] = field(default_factory=list)
    promoted: bool = False
    awaiting: str | None = None
    """What the candidate still waits for when it passed but did not become champion."""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        told = [c for c in self.checks if not c.passed] or self.checks
        return f"version {self.version} {verdict} the CD gates of {self.environment}: " + "; ".join(
            f"{c.name}: {c.reason}" for c in told
        )


def run_cd(
    root: Path,
    environ: Mapping[str, str] | None = None,
    model: str | None = None,
    version: str | None = None,
    tell: Tell = print,
) -> CDOutcome:
    """Put a candidate version through the CD gates of the environment `environ` names
    (ESTEIRA_ENV), record the decision, and make it champion when it passes."""
    from esteira.project import load_project
    from esteira.registry import Registry

    project = load_project(root, environ)
    settings = project.settings
    name = model or settings.ct.model
    if not name:
        raise CDError("give --model (or set [ct] model in esteira.toml)")
    registry = Registry(project)
    candidate = registry.version(name, _candidate(project, name, version, tell))
    champion = registry.by_alias(name)
    outcome = CDOutcome(
        settings.env,
        name,
        candidate.version,
        champion.version if champion else None,
        settings.release,
    )
    tell(
        f"candidate: {name} version {candidate.version}"
        + (f" (release {settings.release})" if settings.release else "")
        + (f", champion: version {champion.version}" if champion else ", no champion yet")
    )
    outcome.checks += [data_validation(project, candidate), *model_gates(project, candidate)]
    if outcome.passed:
        outcome.checks += _served_gates(root, project, candidate, outcome.champion_version, tell)
    record(project, outcome)
    if outcome.passed and outcome.champion_version != candidate.version:
        outcome.awaiting = registry.held_for()
        if outcome.awaiting in (None, "cd"):
            registry.promote(name, candidate.version, outcome.summary(), cd=True)
            outcome.promoted, outcome.awaiting = True, None
    return outcome


def _candidate(project: Project, name: str, version: str | None, tell: Tell) -> str:
    """`version`, else the newest version the deployed release trained (any version where
    the environment runs the working tree), trained now when there is none."""
    from esteira.pipelines.runner import run_pipeline
    from esteira.registry import Registry

    if version:
        return version
    release = project.settings.release
    found = _newest_of(Registry(project), name, release)
    if found is None:
        pipeline = project.settings.ct.pipeline
        by = f"release {release}" if release else "the working tree"
        tell(f"no version of '{name}' trained by {by} yet: running pipeline '{pipeline}'")
        run_pipeline(project, pipeline, {}, trigger="cd")
        found = _newest_of(Registry(project), name, release)
    if found is None:
        raise CDError(
            f"pipeline '{project.settings.ct.pipeline}' registered no version of '{name}': "
            "set [ct] model to the model it registers, or give --version"
        )
    return found


def _newest_of(registry: Any, name: str, release: str) -> str | None:
    if name not in registry.models():
        return None
    for v in registry.versions(name, with_metrics=False):  # newest first
        if not release or v.tags.get(RELEASE_TAG) == release:
            return v.version
    return None


# -- the gates on the record ------------------------------------------------------------------


def data_validation(project: Project, candidate: VersionInfo) -> Check:
    """The run that trained the candidate validated the batches it read."""
    from esteira.registry import RUN_TAG

    run_id = candidate.tags.get(RUN_TAG)
    if not run_id:
        return Check(
            "data_validation",
            False,
            f"version {candidate.version} was not "
            "registered by an esteira run: nothing shows its data was validated",
        )
    reports = sorted(
        io.name.removeprefix("validation/")
        for step in project.metadata.run(run_id).steps
        for io in step.outputs()
        if io.name.startswith("validation/")
    )
    figures = {"pipeline_run_id": run_id, "reports": reports}
    if not reports:
        return Check(
            "data_validation",
            False,
            f"its run {run_id[:12]} validated no batch: call "
            "ctx.validate_batch on what the pipeline ingests",
            figures,
        )
    shown = ", ".join(reports[:4]) + (", ..." if len(reports) > 4 else "")
    return Check(
        "data_validation",
        True,
        f"its run {run_id[:12]} validated {len(reports)} batch(es): {shown}",
        figures,
    )


def model_gates(project: Project, candidate: VersionInfo) -> list[Check]:
    """The model gates' latest decision on the candidate, and their compatibility check."""
    found = project.metadata.gate_decisions(candidate.name, limit=1, version=candidate.version)
    if not found:
        fix = "run its pipeline with the built-in promote step (esteira.steps.promote)"
        return [
            Check(
                "model_gates",
                False,
                f"version {candidate.version} was never judged by the model gates: {fix}",
            )
        ]
    decision = found[0]
    figures = {
        "decided_at": decision.at.isoformat(),
        "metric": decision.checks.get("metric"),
        "metrics": decision.checks.get("metrics", {}),
    }
    gates = Check("model_gates", decision.passed, decision.summary, figures)
    compat = next(
        (c for c in decision.checks.get("checks", []) if c.get("name") == "compatibility"), None
    )
    if compat is None:
        return [gates]
    return [gates, Check("compatibility", compat["passed"], compat["reason"], compat["figures"])]


# -- the gates on a live service --------------------------------------------------------------


def _served_gates(
    root: Path, project: Project, candidate: VersionInfo, champion: str | None, tell: Tell
) -> list[Check]:
    from esteira.cicd.service import ServiceError
    from esteira.models import input_example

    config = project.settings.cd
    versions = [
        candidate.version,
        *([champion] if champion and champion != candidate.version else []),
    ]
    tell(f"starting {len(versions)} service(s) on loopback: version(s) {', '.join(versions)}")
    try:
        with served(root, project.settings, candidate.name, versions, config.timeout_s) as up:
            examples = {v: input_example(project, candidate.name, v) for v in up}
            checks = [smoke_test(project, up[candidate.version], examples[candidate.version])]
            if not checks[0].passed:
                return checks
            tell(
                f"load test: {config.requests} requests from {config.clients} clients "
                f"per service, {ROUNDS} rounds"
            )
            bodies = {v: _body(example.head(1)) for v, example in examples.items()}
            figures = _measure(up, bodies, config)
            checks.append(load_gate(figures, candidate.version, champion, config))
            return checks
    except ServiceError as e:
        return [Check("smoke_test", False, str(e))]


def smoke_test(project: Project, service: Service, example: pd.DataFrame) -> Check:
    """The service answers for the candidate: its input `example`, and a feature-service
    request (only the service's request fields) where the model has one."""
    status, described = service.call("GET", "/model")
    if status != 200 or described.get("version") != service.version:
        return Check("smoke_test", False, f"/model answered {status}: {described}")
    figures: dict[str, Any] = {"port": service.port}
    requests = {"input example": example}
    fields = [f["name"] for f in (described.get("feature_service") or {}).get("request", [])]
    if fields:
        rows = _request_rows(project, service, fields)
        if isinstance(rows, str):
            figures["feature_service"] = rows
        else:
            requests["feature-service request"] = rows
    for what, frame in requests.items():
        status, answer = service.call("POST", "/predict", _body(frame))
        problem = _answer_problem(status, answer, len(frame))
        figures[what] = {"rows": len(frame), "status": status}
        if problem:
            return Check("smoke_test", False, f"{what}: {problem}", figures)
    told = " and ".join(f"{what} ({len(frame)} rows)" for what, frame in requests.items())
    skipped = f"; {figures['feature_service']}" if "feature_service" in figures else ""
    return Check("smoke_test", True, f"a fresh service answered its {told}{skipped}", figures)


def load_gate(
    figures: dict[str, LoadFigures], candidate: str, champion: str | None, config: CDSection
) -> Check:
    """Errors within `max_error_rate`; p99 within `max_p99_ratio` x the champion's (+ slack)
    and any absolute limits set."""
    mine = figures[candidate].summary()
    theirs = figures[champion].summary() if champion in figures else None
    shown = {"candidate": mine, "champion": theirs, "clients": config.clients}
    problems = []
    if mine["error_rate"] > config.max_error_rate:
        problems.append(
            f"{mine['errors']} of {mine['requests']} requests failed "
            f"({mine.get('first_error', '')})"
        )
    if theirs is not None:
        limit = config.max_p99_ratio * theirs["p99_ms"] + config.p99_slack_ms
        shown["limit_p99_ms"] = round(limit, 2)
        if not mine["p99_ms"] <= limit:
            problems.append(
                f"p99 {mine['p99_ms']} ms over {limit:.1f} ms ({config.max_p99_ratio:g}"
                f"x the champion's {theirs['p99_ms']} ms + {config.p99_slack_ms:g} ms)"
            )
    if config.max_p99_ms is not None and not mine["p99_ms"] <= config.max_p99_ms:
        problems.append(f"p99 {mine['p99_ms']} ms over max_p99_ms {config.max_p99_ms:g}")
    floor = config.min_requests_per_s
    if floor is not None and mine["requests_per_s"] < floor:
        problems.append(f"{mine['requests_per_s']} requests/s under min_requests_per_s {floor:g}")
    measured = f"{mine['requests_per_s']} requests/s, p99 {mine['p99_ms']} ms"
    versus = (
        f" (champion v{champion}: {theirs['requests_per_s']} requests/s, p99 {theirs['p99_ms']} ms)"
        if theirs
        else " (no champion to compare with)"
    )
    if problems:
        return Check("load_test", False, "; ".join(problems) + versus, shown)
    return Check("load_test", True, measured + versus, shown)


def _measure(
    services: dict[str, Service], bodies: dict[str, Any], config: CDSection
) -> dict[str, LoadFigures]:
    """Each service's figures over `ROUNDS` rounds that alternate which goes first."""
    totals = {v: LoadFigures() for v in services}
    share = math.ceil(config.requests / ROUNDS)
    deadline = config.timeout_s / (ROUNDS * len(services))
    for round_ in range(ROUNDS):
        order = list(services) if round_ % 2 == 0 else list(reversed(services))
        for version in order:
            got = load_test(services[version], bodies[version], share, config.clients, deadline)
            total = totals[version]
            total.sent += got.sent
            total.errors += got.errors
            total.wall_s += got.wall_s
            total.latencies_ms += got.latencies_ms
            total.first_error = total.first_error or got.first_error
    return totals


def _answer_problem(status: int, answer: Any, rows: int) -> str:
    import numpy as np

    if status != 200:
        return f"HTTP {status}: {str(answer)[:300]}"
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        return f"expected {rows} predictions, got {str(predictions)[:200]}"
    try:
        values = np.asarray(predictions, dtype=float)
    except (TypeError, ValueError):  # class labels
        return "some predictions are empty" if any(p is None for p in predictions) else ""
    return "" if np.isfinite(values).all() else "predictions are not all finite"


def _request_rows(project: Project, service: Service, fields: list[str]) -> pd.DataFrame | str:
    """A few rows of the candidate's training data holding only the feature service's
    request fields, or why there are none."""
    from esteira.monitoring.monitor import training_data

    output = project.settings.ct.reference_output
    try:
        data = training_data(project, service.model, service.version, output)
    except EsteiraError as e:
        return f"no feature-service request sent: {e}"
    missing = [f for f in fields if f not in data.columns]
    if missing:
        return (
            f"no feature-service request sent: its training data ('{output}') lacks "
            f"{', '.join(missing)}"
        )
    return data[fields].dropna().head(SMOKE_ROWS)


def _body(frame: pd.DataFrame) -> dict[str, Any]:
    import json

    return {"records": json.loads(frame.to_json(orient="records", date_format="iso"))}


def record(project: Project, outcome: CDOutcome, kind: str = "cd") -> None:
    """Store the decision with each gate's figures: `kind` cd (the CD gates) or canary."""
    from esteira.metadata import CDDecision
    from esteira.provenance import executor

    project.metadata.add(
        CDDecision(
            kind=kind,
            environment=outcome.environment,
            model=outcome.model,
            version=outcome.version,
            champion_version=outcome.champion_version,
            release=outcome.release,
            passed=outcome.passed,
            summary=outcome.summary(),
            checks=[_jsonable(asdict(c)) for c in outcome.checks],
            actor=executor(),
        )
    )


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
