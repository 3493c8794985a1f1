"""`esteira init`: scaffold a new project that trains, tests and deploys at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from esteira.commands.common import new_console


def init(
    name: Annotated[
        str,
        typer.Argument(
            help="The project's name: its folder, Python package and model. Lower-case "
            "letters, digits and _, starting with a letter."
        ),
    ],
    task: Annotated[
        Literal["binary", "multiclass", "regression"], typer.Option(help="What the model predicts.")
    ] = "binary",
    ci: Annotated[
        Literal["github", "azure", "both"],
        typer.Option(help="CI files: GitHub Actions, Azure Pipelines or both."),
    ] = "both",
    parent: Annotated[Path, typer.Option("--dir", help="Where to create it.")] = Path("."),
) -> None:
    """Create a project: pipelines on a synthetic monthly data source (with seasons, so
    batches, drift and CT are real), a feature view and service, gates, the three
    environments, unit tests and CI files (pull request: esteira ci; main: release, deploy
    and esteira cd in staging; prod after a person's approval).

    Example: esteira init demo_project --task multiclass --ci github
    """
    from esteira.scaffold import create

    root = create(name, parent, task, ci)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    console = new_console()
    console.print(f"created {root} ({task}): {len(files)} files", highlight=False)
    for f in files:
        console.print(f"  {f}", highlight=False, markup=False)
    console.print(f"next: cd {root} && esteira run train && esteira ci", highlight=False)
