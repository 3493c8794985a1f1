"""What the command modules share: the --project option, the console, number formats."""

from __future__ import annotations

import os
import signal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

ProjectOption = Annotated[
    Path, typer.Option("--project", "-p", help="Project folder (holds esteira.toml).")
]


def _select_env(name: str | None) -> str | None:
    """The project loads the environment from ESTEIRA_ENV: --env sets it for this command."""
    if name:
        os.environ["ESTEIRA_ENV"] = name
    return name


EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        envvar="ESTEIRA_ENV",
        callback=_select_env,
        help="Environment whose stores to use: dev (default), staging, prod, or one of "
        "\\[environments] in esteira.toml.",
    ),
]
# Help text is rich markup, where "[ct]" would be a style tag: "\\[" keeps the bracket.
ModelOption = Annotated[str | None, typer.Option(help="Registered model (default: \\[ct] model).")]


class Engine(StrEnum):
    embedded = "embedded"
    spark = "spark"


EngineOption = Annotated[
    Engine,
    typer.Option(
        help="Where the work runs: in this process (embedded), or on Spark (the active "
        "session, else a local one; needs pyspark and Java 17)."
    ),
]


def new_console() -> Console:
    """A terminal's own width; piped to a file or a CI log, wide enough that tables keep
    one line per row (rich assumes 80 columns there, and wraps every cell)."""
    import os

    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=140)
    return console


def number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def interrupt_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl+C: the run and its step are recorded as interrupted."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
