"""`esteira maturity`: the project's scorecard against the three levels of MLOps maturity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console

if TYPE_CHECKING:
    from rich.console import Console

    from esteira.cicd.maturity import Scorecard


def maturity(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard as JSON.")] = False,
) -> None:
    """Score the project against levels 0, 1 and 2 from the evidence in its stores and
    files: each item with what shows it, the level reached, and what the next one needs.

    Example: esteira maturity -p examples/flight_delays
    """
    from esteira.cicd.maturity import other_environments, score
    from esteira.project import open_project

    p = open_project(project)
    card = score(p, other_environments(p))
    console = new_console()
    if as_json:
        console.print_json(json.dumps(card.to_dict(), default=str))
        return
    print_scorecard(console, card, p.settings.env)


def print_scorecard(console: Console, card: Scorecard, env: str) -> None:
    """The scorecard as a table, the level reached and what each next item needs."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"MLOps maturity of {card.project} ({env})")
    for column in ("level", "item", "", "evidence, or what is missing"):
        table.add_column(column)
    for item in card.items:
        mark = "[green]✓[/]" if item.met else "[red]✗[/]"
        table.add_row(str(item.level), item.name, mark, escape(item.evidence))
    console.print(table)
    reached = f"level {card.level}" if card.level >= 0 else "not yet level 0"
    console.print(f"[bold]{reached}[/]")
    for item in card.missing():
        console.print(f"  for level {item.level}: {item.name}: {escape(item.evidence)}")
