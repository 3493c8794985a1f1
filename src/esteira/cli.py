"""The `esteira` command. Each command imports what it needs when it runs, so `--help`
stays fast (MLflow alone takes seconds to import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from esteira.commands import (
    cache,
    cd,
    ci,
    config,
    ct,
    dashboard,
    db,
    export,
    features,
    init,
    maturity,
    registry,
    releases,
)
from esteira.commands.common import (
    Engine,
    EngineOption,
    EnvOption,
    ModelOption,
    ProjectOption,
    interrupt_on_sigterm,
    new_console,
    number,
)

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


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, as defined in the project.")],
    project: ProjectOption = Path("."),
    env: EnvOption = None,
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
    from esteira.pipelines.runner import run_pipeline
    from esteira.project import load_project

    interrupt_on_sigterm()
    console = new_console()
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
        result = run_pipeline(
            p, pipeline, params, only=only, use_cache=not no_cache, on_event=progress, until=until
        )
    _print_result(console, p, result)


@app.command()
def runs(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
) -> None:
    """List recent pipeline runs, newest first.

    Example: esteira runs --project examples/flight_delays --limit 5
    """
    from esteira.console import runs_table
    from esteira.project import open_project

    new_console().print(runs_table(open_project(project).metadata.runs(pipeline, limit)))


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of it.")],
    project: ProjectOption = Path("."),
    env: EnvOption = None,
) -> None:
    """Show one run: steps with timings and cache hits, artifacts, data versions, metrics, models.

    Example: esteira show 3f2a --project examples/flight_delays
    """
    from esteira.console import failure_text, run_details
    from esteira.project import open_project

    console = new_console()
    record = open_project(project).metadata.run(run_id)
    console.print(run_details(record))
    if record.status == "failed":
        console.print(f"[red]{failure_text(record) or record.error}[/]")


@app.command()
def serve(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    model: ModelOption = None,
    alias: Annotated[str, typer.Option(help="Alias to serve and follow.")] = "champion",
    shadow: Annotated[
        str | None, typer.Option(help="Also score with this alias (e.g. challenger); logged only.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    watch: Annotated[float, typer.Option(help="Seconds between registry checks.")] = 5.0,
    max_rows: Annotated[int, typer.Option(help="Most rows per request.")] = 10_000,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, help="Threads one prediction may use (default: \\[runtime] serving_threads)."
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Serve this version and never swap, instead of an alias.")
    ] = None,
    log_predictions: Annotated[
        bool, typer.Option("--log/--no-log", help="Append answers to the prediction log.")
    ] = True,
    canary: Annotated[
        str | None,
        typer.Option(
            help="ALIAS:PERCENT, e.g. challenger:10: that share of requests (a stable "
            "hash of the request id) is answered by the alias; see esteira cd canary."
        ),
    ] = None,
    max_body: Annotated[
        int | None, typer.Option(min=1, help="Largest body in bytes (default: \\[serving]).")
    ] = None,
    read_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds to send a whole body (default: \\[serving])."),
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option(min=1, help="Open connections before 503 (default: \\[serving]).")
    ] = None,
) -> None:
    """Serve a registered model over HTTP, following its alias without restarts.

    Example: esteira serve --project examples/flight_delays --model flight_delays --port 8080
    """
    import uvicorn

    from esteira.config import load_settings
    from esteira.runtime import use_threads
    from esteira.serving.limits import uvicorn_options
    from esteira.serving.metrics import ServiceMetrics
    from esteira.serving.starting import Starting

    settings = load_settings(project)
    name = model or settings.ct.model
    if not name:
        raise typer.BadParameter("give --model (or set [ct] model in esteira.toml)")
    console = new_console()
    threads = threads or settings.runtime.serving_threads
    use_threads(threads)  # before the project and the model load their libraries
    canary_alias, percent = _canary(canary) if canary else (None, 0.0)
    given = {"max_body_bytes": max_body, "read_timeout_s": read_timeout,
             "max_connections": max_connections}  # fmt: skip
    limits = settings.serving.model_copy(update={k: v for k, v in given.items() if v is not None})
    metrics = ServiceMetrics()

    def build() -> Any:  # in a thread, while the port already answers /health and /ready
        from esteira.project import load_project
        from esteira.serving.app import ServeConfig, create_app

        config = ServeConfig(name, alias, shadow, max_rows, watch, log_predictions,
                             threads=threads, version=version, canary=canary_alias,
                             canary_percent=percent, limits=limits)  # fmt: skip
        # The project's code too: a model trained through a feature service is served with it.
        return create_app(load_project(project), config, metrics=metrics,
                          log=lambda m: console.print(m, highlight=False))  # fmt: skip

    server: Any = None
    starting = Starting(build, stop=lambda: setattr(server, "should_exit", True), metrics=metrics)
    server = uvicorn.Server(uvicorn.Config(starting, host=host, port=port, log_level="warning",
                                           access_log=False,
                                           **uvicorn_options(limits, metrics.refused)))  # fmt: skip
    served = f"{name} version {version}" if version else f"{name}@{alias}"
    if canary_alias:
        served += f", {percent:g}% of requests to @{canary_alias}"
    console.print(f"serving {served} on http://{host}:{port} (Ctrl+C or SIGTERM stops it)")
    server.run()
    if starting.failure is not None:
        raise starting.failure
    if not server.started:  # the port was taken, or the interface is not this machine's
        raise typer.Exit(1)


def _canary(text: str) -> tuple[str, float]:
    alias, _, share = text.partition(":")
    try:
        percent = float(share)
    except ValueError:
        percent = -1.0
    if not alias or not 0 < percent <= 50:
        raise typer.BadParameter(
            f"--canary {text!r}: write ALIAS:PERCENT with a share over 0 and at most 50, "
            "e.g. challenger:10"
        )
    return alias, percent


@app.command()
def predict(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    model: ModelOption = None,
    input_table: Annotated[str, typer.Option("--input", help="Lake table to score.")] = "",
    output_table: Annotated[str, typer.Option("--output", help="Lake table to append to.")] = "",
    alias: Annotated[str, typer.Option(help="Alias whose version scores.")] = "champion",
    version: Annotated[str | None, typer.Option(help="A version instead of the alias.")] = None,
    keep: Annotated[
        list[str] | None, typer.Option(help="Input columns to carry over (ids, labels).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk (embedded).")] = 50_000,
    engine: EngineOption = Engine.embedded,
) -> None:
    """Score a lake table in chunks; append predictions with model and data versions.

    Example: esteira predict -p examples/flight_delays --input flight_features
    --output flight_predictions --keep flight

    Example (on Spark): esteira predict -p examples/flight_delays --input flight_features
    --output flight_predictions --keep flight --engine spark
    """
    from rich.progress import Progress

    from esteira.project import load_project

    if not input_table or not output_table:
        raise typer.BadParameter("give --input TABLE and --output TABLE")
    p = load_project(project)
    name = model or p.settings.ct.model
    with Progress(console=new_console()) as progress:
        task = progress.add_task(f"scoring {input_table} ({engine})", total=None)
        if engine is Engine.spark:
            from esteira.spark.scoring import predict_table_spark

            result = predict_table_spark(p, name, input_table, output_table, alias, version, keep)
        else:
            from esteira.serving.batch import predict_table

            result = predict_table(
                p, name, input_table, output_table, alias, version, chunk_rows, keep,
                on_chunk=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    new_console().print(
        f"{result.rows:,} rows of {result.input_table}@v{result.input_version} scored by "
        f"{result.model} v{result.version} in {result.seconds:.1f}s → "
        f"{result.output_table}@v{result.output_version} (run {result.run_id[:12]})",
        highlight=False,
    )


@app.command()
def monitor(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    model: ModelOption = None,
    version: Annotated[str | None, typer.Option(help="Version (default: the champion).")] = None,
    input_table: Annotated[
        str | None, typer.Option("--input", help="Lake table to monitor (default: prediction log).")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch of --input.")] = None,
    since: Annotated[str | None, typer.Option(help="Prediction log window: 90m, 24h, 7d.")] = None,
    labels: Annotated[
        str | None, typer.Option(help="Lake table of labels to join to the served rows.")
    ] = None,
    join_on: Annotated[
        str | None,
        typer.Option(
            help="Columns to join labels on, comma-separated (default: request_id if the "
            "labels have it, else the feature service's entity keys and time)."
        ),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
    engine: EngineOption = Engine.embedded,
) -> None:
    """Drift and performance of a model on served or batch data; writes an HTML report.

    Example: esteira monitor -p examples/flight_delays --input flight_features --batch 2013-03

    Example: esteira monitor -p examples/flight_delays --since 24h --labels departures

    Example (on Spark): esteira monitor -p examples/flight_delays --input flight_features
    --engine spark
    """
    from esteira.console import monitoring_table
    from esteira.monitoring.job import parse_window, run_monitor
    from esteira.project import load_project

    p = load_project(project)
    name = model or p.settings.ct.model
    if not name:
        raise typer.BadParameter("give --model (or set [ct] model in esteira.toml)")
    keys = [k.strip() for k in join_on.split(",") if k.strip()] if join_on else None
    if engine is Engine.spark:
        if not input_table or since or labels:
            raise typer.BadParameter(
                "--engine spark monitors a lake table of the model's inputs (and its labels, "
                "if it has them): give --input TABLE, without --since or --labels"
            )
        from esteira.spark.monitoring import monitor_table_spark

        result = monitor_table_spark(p, name, input_table, version, batch, report)
    else:
        result = run_monitor(
            p, name, version, input_table, batch, parse_window(since), labels, report, keys
        )
    console = new_console()
    console.print(monitoring_table(result.record, p.settings.ct.metric))
    console.print(f"report: {result.report}", highlight=False)


@app.command()
def ui(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
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
    new_console().print(f"MLflow UI for {s.name} on http://127.0.0.1:{port} (Ctrl+C stops it)")
    raise typer.Exit(subprocess.call(cmd))


@app.command()
def demo(
    project: ProjectOption = Path("examples/flight_delays"),
    home: Annotated[
        Path | None, typer.Option(help="The demo's home (default: .esteira/demo in the project).")
    ] = None,
    first: Annotated[str, typer.Option("--from", help="First batch fed to level 1.")] = "2013-04",
    last: Annotated[str, typer.Option("--to", help="Last batch fed to level 1.")] = "2013-12",
    faulty: Annotated[
        str, typer.Option(help="A batch delivered broken, to be quarantined ('' for none).")
    ] = "2013-07",
    fast: Annotated[
        bool, typer.Option(help="Three batches from --from, one of them faulty.")
    ] = False,
) -> None:
    """Walk the reference project through the maturity levels in a home of its own: level 0
    (the pipeline by hand, the first champion), level 1 (batches fed month by month through
    continuous training while a live service answers and swaps champions), then level 2
    (esteira ci, release, deploy and cd in staging, the approved promotion to prod), and
    writes demo-report.html in its home. Ctrl-C stops; a rerun continues.

    Example: esteira demo --project examples/flight_delays --fast
    """
    from esteira.batches import period_of
    from esteira.console import policy_table
    from esteira.ct.replay import PolicyResult
    from esteira.demo.run import run_demo

    batches = period_of([first, last]).range(first, last)
    if fast:
        batches = batches[:3]
        faulty = batches[1] if faulty and faulty not in batches else faulty
    console = new_console()
    where = (home or project / ".esteira" / "demo").resolve()
    console.print(f"esteira demo of {project} in {where}", highlight=False)
    done = run_demo(project, where, batches, faulty or None, console.print)
    result = PolicyResult("the project's triggers", "", done.rows)
    console.print(policy_table(result))
    console.print(
        f"service: {done.requests:,} requests, {done.failed} failed, versions "
        f"{' → '.join('v' + v for v in done.versions_served) or '-'}; latency p50 "
        f"{done.latency_p50_ms:.1f} ms, p99 {done.latency_p99_ms:.1f} ms",
        highlight=False,
    )
    from esteira.cicd.maturity import other_environments, score
    from esteira.commands.maturity import print_scorecard
    from esteira.project import open_project

    demo_home = open_project(project, {**os.environ, "ESTEIRA_HOME": str(where)}, read_only=True)
    print_scorecard(console, score(demo_home, other_environments(demo_home)), "the demo's home")
    from esteira.demo.report import write_report

    report = write_report(project, where, done)
    console.print(f"The report, one file that opens offline: {report}", highlight=False)
    console.print(f"See it all: ESTEIRA_HOME={where} esteira dashboard -p {project}",
                  highlight=False)  # fmt: skip


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
        shown = "  ".join(f"{k}={number(v)}" for k, v in list(metrics.items())[:10])
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


# The command groups, after the everyday commands above in `esteira --help`.
for command in (registry.models, registry.promote, registry.rollback, registry.alerts):
    app.command()(command)
app.command("config")(config.show_config)
app.command("init")(init.init)
app.command("ci")(ci.ci)
app.command("release")(releases.release)
app.command("deploy")(releases.deploy)
app.command("releases")(releases.list_releases)
app.command("maturity")(maturity.maturity)
app.command("dashboard")(dashboard.dashboard)
app.add_typer(cd.app, name="cd")
app.add_typer(features.app, name="features")
app.add_typer(cache.app, name="cache")
app.add_typer(ct.app, name="ct")
app.add_typer(db.app, name="db")
app.add_typer(export.app, name="export")


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
