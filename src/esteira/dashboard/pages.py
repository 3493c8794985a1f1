"""The views of how models are made: overview, pipeline runs, one run, CT runs, gates.
Each takes where it is (`Place`) and the environment's stores, and returns its body; a
store or record not there yet gives the command that makes it, never an error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from markupsafe import Markup

from esteira.dashboard.charts import bar_chart
from esteira.dashboard.layout import (
    badge,
    cards,
    empty,
    facts_table,
    link,
    number,
    seconds,
    status,
    table,
    when,
)

if TYPE_CHECKING:
    from esteira.dashboard.data import Environment
    from esteira.dashboard.layout import Place
    from esteira.metadata import PipelineRun, TableAccess

RUNS_CHARTED = 30


def no_runs(place: Place, env: Environment) -> Markup:
    pipeline = env.settings.ct.pipeline or "PIPELINE"
    return empty(f"No runs yet in {place.env}", place.command(f"run {pipeline}"))


def overview(place: Place, env: Environment) -> Markup:
    parts = [Markup("<h1>{} in {}</h1>").format(place.project, place.env)]
    if env.metadata is None:
        return Markup("").join([*parts, no_runs(place, env)])
    counts = env.counts()
    parts.append(cards([
        ("pipeline runs", counts.pipeline_runs, place.href("/runs")),
        ("CT runs", counts.ct_runs, place.href("/ct")),
        ("gate decisions", counts.gate_decisions, place.href("/gates")),
        ("monitoring records", counts.monitoring_records, place.href("/monitoring")),
        ("alerts", counts.alerts, place.href("/monitoring") + "#alerts"),
    ]))  # fmt: skip
    parts.append(Markup("<h2>Models</h2>"))
    if not place.models:
        parts.append(empty("No registered model yet: a pipeline's step registers one",
                           place.command(f"run {env.settings.ct.pipeline or 'PIPELINE'}")))
    boxes = [_model_box(place, env, name) for name in place.models]
    parts.append(Markup("<div class=models>{}</div>").format(Markup("").join(boxes)))
    parts.append(_scorecard(env))
    return Markup("").join(parts)


def _model_box(place: Place, env: Environment, name: str) -> Markup:
    summary = env.summary(name)
    title = Markup("<h3>{} <span class=sub>{} version(s)</span></h3>").format(
        name, summary.versions
    )
    if not summary.held:
        return title + empty(f"{name} has no champion yet in {place.env}")
    rows = [
        [
            badge(h.alias, "ok" if h.alias == "champion" else "none"),
            link(place.mlflow.version(name, h.version), f"version {h.version}"),
            f"{h.metric} {number(h.value)}" if h.metric else "-",
            when(h.since),
            _run_link(place, h.pipeline_run_id),
            link(place.mlflow.run(env.experiment_id, h.run_id), "MLflow run"),
        ]
        for h in summary.held
    ]
    head = ["alias", "version", "key metric", "since (UTC)", "pipeline run", ""]
    views = Markup(" · ").join(link(place.href(p, model=name), text) for text, p in (
        ("gates", "/gates"), ("CT", "/ct"), ("monitoring", "/monitoring"),
        ("serving", "/serving")))  # fmt: skip
    return Markup("<section>{}{}<p>{}</p></section>").format(title, table(head, rows), views)


def _scorecard(env: Environment) -> Markup:
    card = env.scorecard()
    if card is None:
        return Markup("")
    reached = f"level {card.level}" if card.level >= 0 else "not yet level 0"
    rows = [[str(i.level), i.name, badge("✓", "ok") if i.met else badge("✗", "bad"), i.evidence]
            for i in card.items]  # fmt: skip
    return Markup("<h2>Maturity: {}</h2><p class=sub>evidence from every environment's stores"
                  " (<code>esteira maturity</code>)</p>{}").format(
        reached, table(["level", "item", "", "evidence, or what is missing"], rows))  # fmt: skip


def _run_link(place: Place, run_id: str | None) -> Markup:
    return link(place.href(f"/runs/{run_id}"), run_id[:12]) if run_id else Markup("-")


def runs(place: Place, env: Environment) -> Markup:
    parts = [Markup("<h1>Pipeline runs</h1>")]
    found = env.runs()
    if not found:
        return Markup("").join([*parts, no_runs(place, env)])
    timed = [r for r in reversed(found[:RUNS_CHARTED]) if r.duration_s is not None]
    if timed:
        parts.append(bar_chart([(f"{r.id[:6]} {r.pipeline}", r.duration_s or 0.0) for r in timed],
                               "Duration of the latest runs (s), oldest first"))  # fmt: skip
    rows = [
        [_run_link(place, r.id), r.pipeline, status(r.shown_status), when(r.started_at),
         seconds(r.duration_s), r.trigger, _steps_done(r),
         link(place.mlflow.run(env.experiment_id, r.mlflow_run_id or ""),
              "MLflow" if r.mlflow_run_id else "-")]
        for r in found
    ]  # fmt: skip
    head = ["run", "pipeline", "status", "started (UTC)", "duration", "trigger", "steps", ""]
    parts.append(table(head, rows, numeric=[4]))
    return Markup("").join(parts)


def _steps_done(run: PipelineRun) -> str:
    if run.only_step:
        return f"only {run.only_step}"
    return f"until {run.until_step}" if run.until_step else "all"


def run(place: Place, env: Environment, run_id: str) -> Markup:
    r = env.run(run_id)
    cached = sum(1 for s in r.steps if s.status == "cached")
    facts = [
        ("pipeline", f"{r.pipeline} ({_steps_done(r)})"),
        ("status", status(r.shown_status)),
        ("started", f"{when(r.started_at)} UTC by {r.executor}"),
        ("duration", seconds(r.duration_s)),
        ("steps", f"{len(r.steps) - cached} ran, {cached} cache hits"),
        ("trigger", f"{r.trigger} {r.trigger_reason}".strip()),
        ("code", f"{r.code_version} git {r.git_commit or '-'}"),
        ("params", ", ".join(f"{k}={v}" for k, v in r.params.items()) or "-"),
        ("MLflow", link(place.mlflow.run(env.experiment_id, r.mlflow_run_id or ""),
                        r.mlflow_run_id or "nothing new to track: every step was a cache hit")),
    ]  # fmt: skip
    parts = [Markup("<h1>Run {}</h1>").format(r.id), facts_table(facts)]
    if r.error:
        parts.append(Markup("<p class=empty>{}</p>").format(r.error.strip().splitlines()[-1]))
    timed = [(s.step, s.duration_s or 0.0) for s in r.steps]
    if timed:
        parts.append(bar_chart(timed, "Time per step (s)"))
    rows = []
    for s in r.steps:
        told = s.status + (f" ← {s.cached_from[:8]}" if s.cached_from else "")
        metrics = ", ".join(f"{k}={number(v)}" for k, v in sorted(s.metrics.items())
                            if "." not in k and isinstance(v, int | float))  # fmt: skip
        models = Markup(", ").join(link(place.mlflow.version(m.name, m.version),
                                        f"{m.name} v{m.version}") for m in s.models)  # fmt: skip
        tables = "; ".join(
            f"{mode} " + ", ".join(f"{t}@v{v}" for t, v in versions.items())
            for mode, versions in _newest_versions(s.tables).items()
        )
        rows.append([s.step, status(s.status) if not s.cached_from else badge(told, "ok"),
                     seconds(s.duration_s), tables or "-", metrics or "-", models or "-"])
    parts.append(Markup("<h2>Steps</h2>"))
    parts.append(table(["step", "status", "time", "data", "metrics", "models"], rows, [2]))
    return Markup("").join(parts)


def _newest_versions(accesses: list[TableAccess]) -> dict[str, dict[str, int]]:
    """Per mode (read, write), each table once, at the newest version the step used."""
    found: dict[str, dict[str, int]] = {}
    for a in accesses:
        seen = found.setdefault(a.mode, {})
        seen[a.table] = max(seen.get(a.table, a.version), a.version)
    return found


def ct_runs(place: Place, env: Environment) -> Markup:
    parts = [Markup("<h1>Continuous training of {}</h1>").format(place.model or "-")]
    if not place.model:
        return Markup("").join([*parts, empty("No model to train: set [ct] model in esteira.toml")])
    found = env.ct_runs(place.model)
    if not found:
        return Markup("").join([*parts, empty(
            f"No CT runs of {place.model} yet in {place.env}: start the controller, or fire one",
            place.command("ct start"), place.command('ct trigger --reason "..."'),
        )])  # fmt: skip
    rows = [
        [when(o.run.at), o.run.trigger, o.run.batch or "-", status(o.run.status),
         f"{o.run.champion_before or '-'} → {o.run.champion_after or '-'}", o.led_to,
         _run_link(place, o.run.pipeline_run_id), o.run.reason]
        for o in found
    ]  # fmt: skip
    head = ["when (UTC)", "trigger", "batch", "status", "champion", "led to", "run", "why"]
    parts.append(table(head, rows))
    return Markup("").join(parts)


def gates(place: Place, env: Environment) -> Markup:
    parts = [Markup("<h1>Gates and aliases of {}</h1>").format(place.model or "-")]
    if not place.model:
        return Markup("").join([*parts, empty("No registered model yet")])
    found = env.gates(place.model)
    if not found.decisions and not found.cd and not found.history:
        return Markup("").join([*parts, empty(
            f"No gate decision on {place.model} yet in {place.env}: a pipeline's promote step "
            "judges each version it registers", place.command("run train"))])  # fmt: skip
    parts.append(Markup("<h2>Gate decisions</h2>"))
    rows = []
    for d in found.decisions:
        metric = d.checks.get("metric", "")
        figure = d.checks.get("metrics", {}).get(metric)
        checks = Markup(" ").join(
            badge(c["name"], "ok" if c["passed"] else "bad") for c in d.checks.get("checks", [])
        )
        rows.append([when(d.at), _version(place, d.version), d.champion_version or "-",
                     status("passed" if d.passed else "failed"),
                     f"{metric} {number(figure)}" if metric else "-", checks,
                     _run_link(place, d.pipeline_run_id), d.summary])  # fmt: skip
    head = ["when (UTC)", "version", "vs champion", "verdict", "figure", "checks", "run", "why"]
    parts.append(table(head, rows) if rows else empty("none yet"))
    if found.cd:
        cd_rows = [[when(d.at), d.kind, d.environment, _version(place, d.version),
                    d.champion_version or "-", status("passed" if d.passed else "failed"),
                    Markup(" ").join(badge(c["name"], "ok" if c["passed"] else "bad")
                                     for c in d.checks), d.summary]
                   for d in found.cd]  # fmt: skip
        parts.append(Markup("<h2>CD gates and canaries</h2>"))
        parts.append(table(["when (UTC)", "kind", "env", "version", "vs champion", "verdict",
                            "checks", "why"], cd_rows))  # fmt: skip
    for alias, moves in found.history.items():
        parts.append(Markup("<h2>History of {}</h2>").format(alias))
        parts.append(table(
            ["when (UTC)", "action", "from", "to", "by", "why"],
            [[when(m.at), m.action, m.from_version or "-", m.to_version or "(removed)",
              m.actor, m.reason] for m in reversed(moves)],
        ))  # fmt: skip
    return Markup("").join(parts)


def _version(place: Place, version: str) -> Markup:
    return link(place.mlflow.version(place.model or "", version), version)

