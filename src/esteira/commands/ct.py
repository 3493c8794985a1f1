"""`esteira ct`: the continuous-training controller, on-demand runs, CT runs and replay."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from esteira.batches import FORMS, period_of
from esteira.commands.common import EnvOption, ProjectOption, interrupt_on_sigterm, new_console

app = typer.Typer(help="Continuous training: controller, triggers, replay.", no_args_is_help=True)


@app.command("replay")
def ct_replay(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    first: Annotated[str, typer.Option("--from", help=f"First batch; batches are {FORMS}.")] = "",
    last: Annotated[str, typer.Option("--to", help="Last batch, in the same form.")] = "",
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="never | schedule | drift | performance | monthly (every new batch) | "
            "project (its \\[ct.triggers] together); repeat to compare."
        ),
    ] = None,
) -> None:
    """Replay past batches through the CT loop under retraining policies, side by side.

    Batches go from --from to --to in order, labelled as the batch table labels them.

    Example: esteira ct replay -p examples/flight_delays --from 2013-04 --to 2013-12
    --policy never --policy drift
    """
    from esteira.config import load_settings
    from esteira.console import policy_table, replay_summary
    from esteira.ct.replay import replay

    if not first or not last:
        raise typer.BadParameter("give --from and --to, e.g. --from 2013-04 --to 2013-12")
    console = new_console()
    policies = policy or ["never", "drift"]
    batches = period_of([first, last], load_settings(project).ct.batch_period).range(first, last)

    def progress(name: str, row) -> None:
        done = "retrained" if row.retrained else ("quarantined" if row.quarantined else "kept")
        console.print(
            f"  {name:>11}  {row.batch}  champion v{row.champion}  {done}", highlight=False
        )

    results = replay(project, batches, policies, on_row=progress)
    for result in results:
        console.print(policy_table(result))
    console.print(replay_summary(results))


@app.command("start")
def ct_start(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between checks.")] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Check once, run if a trigger fires, and exit.")
    ] = False,
) -> None:
    """Run the CT controller in the foreground until SIGTERM or Ctrl+C; with --once, one
    check (for a scheduler: Databricks, Airflow, cron). Exit 1 when a run it made failed.

    Example: esteira ct start --project examples/flight_delays --interval 60
    """
    import threading

    from esteira.ct.controller import Controller
    from esteira.project import load_project

    console = new_console()
    controller = Controller(load_project(project), log=lambda m: console.print(m, highlight=False))
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        console.print("stopping after the current step (signal received)")
        stop.set()
        raise KeyboardInterrupt  # a run in progress is recorded as interrupted

    signal.signal(signal.SIGTERM, request_stop)
    try:
        if once:
            run = controller.tick()
            if run is None:
                console.print(f"CT for {controller.model}: no trigger fired")
            elif run.status != "completed":
                raise typer.Exit(1)
            return
        controller.serve(stop, interval)
    except KeyboardInterrupt:
        console.print("CT controller stopped; an interrupted run resumes at the next start")
        raise typer.Exit(130) from None


@app.command("trigger")
def ct_trigger(
    reason: Annotated[str, typer.Option(help="Why; recorded with the run.")],
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    batch: Annotated[str | None, typer.Option(help="Newest batch to train on.")] = None,
) -> None:
    """Fire a CT run now, on demand (waits for no trigger; refuses if one is running).

    Example: esteira ct trigger --reason "new carrier contract" -p examples/flight_delays
    """
    from esteira.ct.controller import Controller
    from esteira.ct.triggers import Fire
    from esteira.project import load_project

    interrupt_on_sigterm()
    console = new_console()
    controller = Controller(load_project(project), log=lambda m: console.print(m, highlight=False))
    run = controller.run([Fire("on_demand", reason)], batch=batch)
    if run.status != "completed":
        raise typer.Exit(1)


@app.command("runs")
def ct_runs(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
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
    new_console().print(table)
