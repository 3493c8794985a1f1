"""`esteira cd`: the CD gates that make a version an environment's champion, and `esteira cd
canary`, the online validation of a canary on live traffic."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esteira.commands.common import EnvOption, ModelOption, ProjectOption, new_console

if TYPE_CHECKING:
    from rich.console import Console

    from esteira.cicd.cd import CDOutcome


app = typer.Typer(no_args_is_help=False, invoke_without_command=True)


@app.callback()
def cd(
    context: typer.Context,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    model: ModelOption = None,
    version: Annotated[
        str | None,
        typer.Option(
            help="The candidate (default: the newest version the deployed release "
            "trained; trained now when there is none)."
        ),
    ] = None,
) -> None:
    """Put a candidate through the CD gates of an environment: data validation and model
    gates passed, a service started from the registry answers a smoke test, and a bounded
    load test on loopback holds against the champion served beside it (\\[cd] in
    esteira.toml). All pass: it becomes the champion there. Exits 1 naming each failed gate;
    the champion then stays as it was.

    Example: esteira cd --env staging -p examples/flight_delays
    """
    if context.invoked_subcommand is not None:
        return
    from esteira.cicd.cd import run_cd

    console = new_console()
    outcome = run_cd(project, None, model, version,
                     tell=lambda m: console.print(m, highlight=False, markup=False))  # fmt: skip
    _report(console, "esteira cd", f"CD gates of {outcome.environment}", outcome)


@app.command()
def canary(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    model: ModelOption = None,
    alias: Annotated[str, typer.Option(help="The canary's alias.")] = "challenger",
    since: Annotated[
        datetime | None,
        typer.Option(help="Judge from this time (UTC; default: when the alias last moved)."),
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Lake table of labels to compare the task's metric on.")
    ] = None,
    approve: Annotated[
        bool, typer.Option(help="Approve the promotion, where the environment needs it (prod).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why; kept with the decision.")] = "",
) -> None:
    """Judge a canary on live traffic, then promote it or roll it back.

    The canary is what `esteira serve --canary ALIAS:PERCENT` has been serving; it is
    compared with the champion on the prediction log since it began: enough requests (\\[cd]
    canary_min_requests), errors, p99 latency (\\[cd] limits), the distribution of
    predictions, and with --labels the task's metric. Passed: it becomes champion (in prod,
    with --approve). Failed: its alias is removed, so the service stops routing to it, and
    the command exits 1. Both are recorded with why.

    Example: esteira cd canary --env prod --approve --reason "canary week clean"
    """
    from datetime import UTC

    from esteira.cicd.canary import judge_canary

    when = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since
    outcome = judge_canary(project, None, model, alias, when, labels, approve, reason)
    hint = " (esteira cd canary --approve --reason ...)" if outcome.awaiting else ""
    _report(new_console(), "canary", f"canary in {outcome.environment}", outcome, hint)


def _report(console: Console, what: str, title: str, outcome: CDOutcome, hint: str = "") -> None:
    """The gates' table, then the verdict; exits 1 when they failed."""
    from rich.table import Table

    table = Table(title=f"{title}: {outcome.model} version {outcome.version}",
                  title_justify="left")  # fmt: skip
    for column in ("gate", "verdict", "evidence"):
        table.add_column(column, overflow="fold")
    for c in outcome.checks:
        verdict = "[green]passed[/]" if c.passed else "[bold red]FAILED[/]"
        table.add_row(c.name, verdict, c.reason)
    console.print(table)
    version, env = outcome.version, outcome.environment
    if not outcome.passed:
        console.print(f"[red]{what} failed[/red]: {outcome.model} stays at champion "
                      f"{outcome.champion_version or '(none)'}")  # fmt: skip
        raise typer.Exit(1)
    if outcome.promoted:
        told = f"version {version} is now the champion in {env}"
    elif outcome.awaiting:
        told = f"version {version} awaits {outcome.awaiting} in {env}{hint}"
    else:
        told = f"version {version} was already the champion: passed again"
    console.print(f"[green]{what} passed[/green]: {told}", highlight=False)
