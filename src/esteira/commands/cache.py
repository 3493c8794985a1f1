"""`esteira cache`: list and prune the step cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console, size

app = typer.Typer(help="List or prune the step cache.", no_args_is_help=True)


@app.command("list")
def cache_list(project: ProjectOption = Path("."), env: EnvOption = None) -> None:
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
            e.pipeline, e.step, str(e.executions), str(e.reuses), size(e.stored_bytes), e.last_run
        )
    new_console().print(table)


@app.command("prune")
def cache_prune(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    keep_last: Annotated[int, typer.Option(min=0, help="Executions kept per step.")] = 3,
    older_than: Annotated[float, typer.Option(help="Keep anything younger (days).")] = 7.0,
) -> None:
    """Delete cached artifacts beyond the newest executions of each step; those become misses.

    Example: esteira cache prune --project examples/flight_delays --keep-last 1 --older-than 0
    """
    from esteira.pipelines.cache import prune
    from esteira.project import open_project

    report = prune(open_project(project), keep_last, older_than)
    new_console().print(
        f"removed {report.removed} artifacts ({size(report.freed_bytes)}), kept {report.kept}"
    )
