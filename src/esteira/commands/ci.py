"""`esteira ci`: the ML test battery on a project's code, for pull requests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esteira.commands.common import ProjectOption, new_console

if TYPE_CHECKING:
    from rich.console import Console

    from esteira.cicd.evidence import CheckResult

COLORS = {"passed": "green", "skipped": "yellow", "FAILED": "bold red"}


def ci(
    project: ProjectOption = Path("."),
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also write the results as JUnit XML to this file."),
    ] = None,
) -> None:
    """Run the ML test battery: unit tests, every pipeline end to end, model checks.

    In a throwaway home (the project's stores are never touched), with the pipelines'
    \\[ci] params: the project's tests/ pass; every pipeline runs and each step returns what
    it declares; metrics and predictions are finite; every ingested table was validated;
    the registered model beats a trivial baseline; a second run predicts the same and
    returns the same types and schemas; the model loads in a fresh process; its feature
    service gives the same inputs offline and online. Exits 1 naming each failed check and
    why; a check with nothing to check is skipped, saying why.

    Example: esteira ci -p examples/flight_delays --junit ci.xml
    """
    from esteira.cicd.battery import CHECKS, run_battery
    from esteira.cicd.junit import write_junit

    console = new_console()
    total = len(CHECKS)
    done: list[str] = []

    def progress(name: str, result: CheckResult | None) -> None:
        if result is None:
            done.append(name)
            console.print(f"[{len(done)}/{total}] {name} ...", highlight=False, markup=False)
            return
        verdict = f"[{COLORS[result.verdict]}]{result.verdict}[/]"
        console.print(f"      {verdict} in {result.duration_s:.1f} s", highlight=False)

    results = run_battery(project, progress=progress)
    _print_table(console, results)
    if junit is not None:
        console.print(f"JUnit XML: {write_junit(results, junit)}", highlight=False)
    failed = [r for r in results if not r.passed]
    if failed:
        console.print(f"[red]esteira ci failed[/red]: {len(failed)} of {len(results)} checks")
        for r in failed:
            console.print(f"  {r.name}: {r.reason}", highlight=False, markup=False)
        raise typer.Exit(1)
    skipped = [r.name for r in results if r.skipped]
    told = f"all {len(results)} checks"
    if skipped:
        told = (
            f"{len(results) - len(skipped)} checks, {len(skipped)} skipped ({', '.join(skipped)})"
        )
    console.print(f"[green]esteira ci passed[/green]: {told}", highlight=False)


def _print_table(console: Console, results: list[CheckResult]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="ML test battery", title_justify="left")
    for column in ("check", "verdict", "reason"):
        table.add_column(column)
    for r in results:
        table.add_row(r.name, Text(r.verdict, COLORS[r.verdict]), Text(r.reason))
    console.print(table)
