"""The `esteira` command. Each command imports what it needs when it runs, so `--help`
stays fast (MLflow alone takes seconds to import)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from esteira.pipelines.runner import RunResult
    from esteira.project import Project

app = typer.Typer(
    name="esteira",
    help="MLOps from notebook to continuous training and CI/CD, on MLflow, Delta Lake and DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ProjectOption = Annotated[
    Path, typer.Option("--project", "-p", help="Project folder (holds esteira.toml).")
]


def _console():
    from rich.console import Console

    return Console()


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, as defined in the project.")],
    project: ProjectOption = Path("."),
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Override a parameter: NAME=VALUE.")
    ] = None,
    only: Annotated[
        str | None, typer.Option(help="Run one step by hand, its inputs from the latest run.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Run only the steps this step needs, and it.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step anew.")] = False,
) -> None:
    """Run a pipeline; unchanged steps are cache hits.

    Example: esteira run train --project examples/flight_delays --param end=2013-04
    """
    from esteira.console import RunProgress
    from esteira.pipelines.params import parse_assignments
    from esteira.project import load_project

    _interrupt_on_sigterm()
    console = _console()
    p = load_project(project)
    pipe = p.pipeline(pipeline)
    params = parse_assignments(pipe, param or [])
    if only:
        steps = [only]
    elif until:
        steps = [s.name for s in pipe.up_to(pipe.step(until))]
    else:
        steps = [s.name for s in pipe.steps]
    with RunProgress(console, steps) as progress:
        result = p.run(
            pipeline, params, only=only, use_cache=not no_cache, on_event=progress, until=until
        )
    _print_result(console, p, result)


@app.command()
def runs(
    project: ProjectOption = Path("."),
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
) -> None:
    """List recent pipeline runs, newest first.

    Example: esteira runs --project examples/flight_delays --limit 5
    """
    from esteira.console import runs_table
    from esteira.project import open_project

    _console().print(runs_table(open_project(project).metadata.runs(pipeline, limit)))


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of it.")],
    project: ProjectOption = Path("."),
) -> None:
    """Show one run: steps with timings and cache hits, artifacts, data versions, metrics, models.

    Example: esteira show 3f2a --project examples/flight_delays
    """
    from esteira.console import failure_text, run_details
    from esteira.project import open_project

    console = _console()
    record = open_project(project).metadata.run(run_id)
    console.print(run_details(record))
    if record.status == "failed":
        console.print(f"[red]{failure_text(record) or record.error}[/]")


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="Model name; all models when omitted.")] = None,
    project: ProjectOption = Path("."),
    metric: Annotated[
        list[str] | None, typer.Option(help="Metrics to show (default: a few common ones).")
    ] = None,
) -> None:
    """List registered models, or the versions of one: aliases, key metrics and lineage.

    Example: esteira models flight_delays --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.project import open_project
    from esteira.registry import Registry

    registry = Registry(open_project(project))
    if name is None:
        for model in registry.models() or ["(no registered model yet)"]:
            _console().print(model)
        return
    shown = metric or ["roc_auc", "pr_auc", "log_loss", "accuracy", "rmse"]
    versions = registry.versions(name)
    present = [m for m in shown if any(m in v.metrics for v in versions)]
    table = Table(title=f"model {name}", title_justify="left")
    for col in ("version", "aliases", "created (UTC)", *present, "pipeline run", "code", "data"):
        table.add_column(col, overflow="fold")
    for v in versions:
        data = ", ".join(
            f"{k.removeprefix('esteira.data.').removesuffix('.version')}@v{val}"
            for k, val in sorted(v.tags.items())
            if k.startswith("esteira.data.")
        )
        table.add_row(
            v.version,
            ", ".join(v.aliases),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            *(_number(v.metrics[m]) if m in v.metrics else "-" for m in present),
            v.tags.get("esteira.pipeline_run_id", "")[:12],
            v.tags.get("esteira.code_version", "")[:8],
            data,
        )
    _console().print(table)


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to promote.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the metadata store.")],
    project: ProjectOption = Path("."),
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Point the champion (or another alias) at a version, by hand.

    Example: esteira promote flight_delays 3 --reason "passed review" -p examples/flight_delays
    """
    from esteira.project import open_project
    from esteira.registry import Registry

    change = Registry(open_project(project)).promote(name, version, reason, alias)
    _console().print(
        f"{name}: {alias} {change.from_version or '(none)'} → {change.to_version} "
        f"by {change.actor}: {change.reason}"
    )


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the metadata store.")],
    project: ProjectOption = Path("."),
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
) -> None:
    """Put the champion back on the version it had before the current one.

    Example: esteira rollback flight_delays --reason "AUC fell on JFK" -p examples/flight_delays
    """
    from esteira.project import open_project
    from esteira.registry import Registry

    change = Registry(open_project(project)).rollback(name, reason, alias)
    _console().print(
        f"{name}: {alias} {change.from_version} → {change.to_version} "
        f"by {change.actor}: {change.reason}"
    )


@app.command()
def alerts(
    project: ProjectOption = Path("."),
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. data_validation.")] = None,
    limit: Annotated[int, typer.Option(help="How many alerts to list.")] = 20,
) -> None:
    """List recent alerts: quarantined batches, and later failed gates and drift.

    Example: esteira alerts --project examples/flight_delays --kind data_validation
    """
    from rich.table import Table

    from esteira.project import open_project

    table = Table(title="alerts", title_justify="left")
    for col in ("when (UTC)", "kind", "subject", "message", "run"):
        table.add_column(col, overflow="fold", no_wrap=col == "when (UTC)")
    for a in open_project(project).metadata.alerts(kind, limit):
        run = (a.pipeline_run_id or "")[:12]
        table.add_row(f"{a.created_at:%Y-%m-%d %H:%M:%S}", a.kind, a.subject, a.message, run)
    _console().print(table)


features_app = typer.Typer(help="Discover the project's feature views.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("list")
def features_list(project: ProjectOption = Path(".")) -> None:
    """List the feature views: source, entities, features, TTL, offline table version.

    Example: esteira features list --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.project import load_project

    p = load_project(project)
    table = Table(title="feature views", title_justify="left")
    for col in ("view", "source", "entities", "timestamp", "features", "ttl", "offline"):
        table.add_column(col, overflow="fold", no_wrap=col != "features")
    for v in sorted(p.feature_views.values(), key=lambda v: v.name):
        version = p.lake.version(v.offline_table)
        table.add_row(
            v.name,
            v.source,
            ", ".join(v.entities),
            v.timestamp or "(static)",
            ", ".join(v.features),
            str(v.ttl or "-"),
            f"v{version}" if version is not None else "not materialized",
        )
    _console().print(table)


@features_app.command("show")
def features_show(
    view: Annotated[str, typer.Argument(help="Feature view name.")],
    project: ProjectOption = Path("."),
) -> None:
    """Show one feature view: its definition, and its offline table's size and history.

    Example: esteira features show weather_at_origin --project examples/flight_delays
    """
    from esteira.project import load_project

    p = load_project(project)
    v = p.features.view(view)
    console = _console()
    console.print(f"[bold]{v.name}[/]  {v.description}", highlight=False)
    for label, value in (
        ("source", v.source),
        ("entities", ", ".join(v.entities)),
        ("timestamp", v.timestamp or "(static: joined on the keys alone)"),
        ("features", ", ".join(v.features)),
        ("ttl", str(v.ttl or "none")),
        ("transform", "yes" if v.transform else "none"),
        ("offline table", v.offline_table),
    ):
        console.print(f"  {label:<14}{value}", highlight=False)
    if p.lake.exists(v.offline_table):
        rows, version = p.lake.read(v.offline_table)
        console.print(f"  {'materialized':<14}v{version}, {len(rows)} rows", highlight=False)
        console.print(rows.describe(include="all").T.to_string(max_cols=8), highlight=False)
    else:
        console.print(f"  {'materialized':<14}not yet: run the pipeline that materializes it")


cache_app = typer.Typer(help="List or prune the step cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("list")
def cache_list(project: ProjectOption = Path(".")) -> None:
    """Per step: executions, cache reuses and bytes stored.

    Example: esteira cache list --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.pipelines.cache import summary
    from esteira.project import open_project

    table = Table(title="step cache", title_justify="left")
    for col in ("pipeline", "step", "executions", "reuses", "stored", "last run (UTC)"):
        table.add_column(
            col, justify="right" if col in ("executions", "reuses", "stored") else "left"
        )
    for e in summary(open_project(project)):
        table.add_row(
            e.pipeline, e.step, str(e.executions), str(e.reuses), _bytes(e.stored_bytes), e.last_run
        )
    _console().print(table)


@cache_app.command("prune")
def cache_prune(
    project: ProjectOption = Path("."),
    keep_last: Annotated[int, typer.Option(help="Executions kept per step.")] = 3,
    older_than: Annotated[float, typer.Option(help="Keep anything younger (days).")] = 7.0,
) -> None:
    """Delete cached artifacts beyond the newest executions of each step; those become misses.

    Example: esteira cache prune --project examples/flight_delays --keep-last 1 --older-than 0
    """
    from esteira.pipelines.cache import prune
    from esteira.project import open_project

    report = prune(open_project(project), keep_last, older_than)
    _console().print(
        f"removed {report.removed} artifacts ({_bytes(report.freed_bytes)}), kept {report.kept}"
    )


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


ct_app = typer.Typer(
    help="Continuous training: controller, triggers, replay.", no_args_is_help=True
)
app.add_typer(ct_app, name="ct")


@ct_app.command("replay")
def ct_replay(
    project: ProjectOption = Path("."),
    first: Annotated[str, typer.Option("--from", help="First batch (month), YYYY-MM.")] = "",
    last: Annotated[str, typer.Option("--to", help="Last batch (month), YYYY-MM.")] = "",
    policy: Annotated[
        list[str] | None,
        typer.Option(help="never | schedule | drift | performance; repeat to compare."),
    ] = None,
) -> None:
    """Replay past batches through the CT loop under retraining policies, side by side.

    Example: esteira ct replay -p examples/flight_delays --from 2013-04 --to 2013-12
    --policy never --policy drift
    """
    from esteira.console import policy_table, replay_summary
    from esteira.ct.replay import monthly_batches, replay

    if not first or not last:
        raise typer.BadParameter("give --from and --to, e.g. --from 2013-04 --to 2013-12")
    console = _console()
    policies = policy or ["never", "drift"]
    batches = monthly_batches(first, last)

    def progress(name: str, row) -> None:
        done = "retrained" if row.retrained else ("quarantined" if row.quarantined else "kept")
        console.print(
            f"  {name:>11}  {row.batch}  champion v{row.champion}  {done}", highlight=False
        )

    results = replay(project, batches, policies, on_row=progress)
    for result in results:
        console.print(policy_table(result))
    console.print(replay_summary(results))


@ct_app.command("start")
def ct_start(
    project: ProjectOption = Path("."),
    interval: Annotated[float | None, typer.Option(help="Seconds between checks.")] = None,
) -> None:
    """Run the CT controller in the foreground until SIGTERM or Ctrl+C.

    Example: esteira ct start --project examples/flight_delays --interval 60
    """
    import threading

    from esteira.ct.controller import Controller
    from esteira.project import load_project

    console = _console()
    controller = Controller(load_project(project), log=lambda m: console.print(m, highlight=False))
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        console.print("stopping after the current step (signal received)")
        stop.set()
        raise KeyboardInterrupt  # a run in progress is recorded as interrupted

    signal.signal(signal.SIGTERM, request_stop)
    try:
        controller.serve(stop, interval)
    except KeyboardInterrupt:
        console.print("CT controller stopped; an interrupted run resumes at the next start")
        raise typer.Exit(130) from None


@ct_app.command("trigger")
def ct_trigger(
    reason: Annotated[str, typer.Option(help="Why; recorded with the run.")],
    project: ProjectOption = Path("."),
    batch: Annotated[str | None, typer.Option(help="Newest batch to train on.")] = None,
) -> None:
    """Fire a CT run now, on demand (waits for no trigger; refuses if one is running).

    Example: esteira ct trigger --reason "new carrier contract" -p examples/flight_delays
    """
    from esteira.ct.controller import Controller
    from esteira.ct.triggers import Fire
    from esteira.project import load_project

    _interrupt_on_sigterm()
    console = _console()
    controller = Controller(load_project(project), log=lambda m: console.print(m, highlight=False))
    run = controller.run([Fire("on_demand", reason)], batch=batch)
    if run.status != "completed":
        raise typer.Exit(1)


@ct_app.command("runs")
def ct_runs(
    project: ProjectOption = Path("."),
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
) -> None:
    """List CT runs: trigger, reason, outcome and the champion before and after.

    Example: esteira ct runs --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.config import load_settings
    from esteira.project import open_project

    model = load_settings(project).ct.model
    table = Table(title=f"CT runs of {model}", title_justify="left")
    for col in ("when (UTC)", "trigger", "batch", "status", "champion", "reason", "run"):
        table.add_column(col, overflow="fold")
    for r in open_project(project).metadata.ct_runs(model, limit):
        table.add_row(
            f"{r.at:%Y-%m-%d %H:%M:%S}",
            r.trigger,
            r.batch or "-",
            r.status,
            f"{r.champion_before or '-'} → {r.champion_after or '-'}",
            r.reason,
            (r.pipeline_run_id or "")[:12],
        )
    _console().print(table)


@app.command()
def ui(
    project: ProjectOption = Path("."),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Start the MLflow UI on the project's tracking store (127.0.0.1 only).

    Example: esteira ui --project examples/flight_delays --port 5000
    """
    from esteira.config import load_settings

    s = load_settings(project)
    cmd = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", s.tracking_uri,
        "--registry-store-uri", s.registry_uri,
        "--default-artifact-root", s.mlflow_artifacts_path.as_uri(),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    _console().print(f"MLflow UI for {s.name} on http://127.0.0.1:{port} (Ctrl+C stops it)")
    raise typer.Exit(subprocess.call(cmd))


@app.command()
def demo(
    project: ProjectOption = Path("examples/flight_delays"),
    pipeline: Annotated[str, typer.Option(help="Pipeline to run.")] = "train",
) -> None:
    """Run the reference project's training pipeline and say where to look.

    Example: esteira demo --project examples/flight_delays
    """
    from esteira.project import open_project

    run(pipeline, project)
    latest = open_project(project).metadata.runs(pipeline, limit=1)[0]
    activate = Path(sys.executable).parent / "activate"
    _console().print(
        f"\n[bold]Where to look[/] (first: source {activate})\n"
        "  # one run: steps, timings, cache hits, artifacts, data versions, metrics\n"
        f"  esteira show {latest.id[:12]} -p {project}\n"
        "  # MLflow UI on http://127.0.0.1:5000: params, metrics, datasets, lineage tags,\n"
        "  # and the registered model\n"
        f"  esteira ui -p {project}\n"
        "  # one step by hand, on the latest upstream artifacts\n"
        f"  esteira run {pipeline} -p {project} --only evaluate\n"
        "Run the demo again: every step is a cache hit.",
        highlight=False,
    )


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl+C: the run and its step are recorded as interrupted."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _print_result(console: Console, project: Project, result: RunResult) -> None:
    from rich.markup import escape

    cached = sum(1 for s in result.step_status.values() if s == "cached")
    console.print(
        f"\n[bold green]{result.pipeline}[/] run [bold]{result.run_id[:12]}[/] "
        f"{result.status} in {result.duration_s:.2f}s "
        f"({len(result.step_status) - cached} ran, {cached} cached)"
    )
    record = project.metadata.run(result.run_id)
    metrics = {k: v for s in record.steps for k, v in s.metrics.items() if "." not in k}
    if metrics:
        shown = "  ".join(f"{k}={_number(v)}" for k, v in list(metrics.items())[:10])
        console.print(f"  metrics  {shown}", highlight=False)
    for m in (m for s in record.steps for m in s.models):
        console.print(f"  model    models:/{m.name}/{m.version} (registered)", highlight=False)
    for d in project.metadata.gate_decisions(pipeline_run_id=result.run_id):
        style = "green" if d.passed else "yellow"
        console.print(f"  gates    [{style}]{escape(d.summary)}[/]", highlight=False)
    if result.mlflow_run_id:
        console.print(f"  MLflow   run {result.mlflow_run_id}", highlight=False)
    else:
        console.print("  MLflow   nothing new to track: every step was a cache hit")


def main() -> None:
    from esteira.errors import EsteiraError

    # esteira reports what MLflow did in its own words; keep MLflow's INFO lines out of the way.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        app()
    except EsteiraError as e:
        import traceback

        from rich.console import Console
        from rich.markup import escape

        from esteira.errors import StepFailed

        err = Console(stderr=True)
        if isinstance(e, StepFailed) and not isinstance(e.error, EsteiraError):
            # the user's code failed: its traceback is the story
            err.print("".join(traceback.format_exception(e.error)), style="dim", highlight=False)
        err.print("[bold red]error:[/]", escape(str(e)), highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
