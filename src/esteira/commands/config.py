"""`esteira config`: a project's effective settings, the defaults, the reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console

if TYPE_CHECKING:
    from esteira.config_reference import EffectiveSettings


def show_config(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults", help="Print every key with its default, as a commented esteira.toml."
        ),
    ] = False,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference", help="Print the configuration reference (docs/configuration.md)."
        ),
    ] = False,
) -> None:
    """Show a project's effective settings and where each came from.

    Every key with its value and its source: the default, esteira.toml, or the environment
    variable that set it.

    Example: esteira config -p examples/flight_delays
    """
    from esteira import config_reference

    if defaults or reference:
        text = (
            config_reference.defaults_toml() if defaults else config_reference.reference_markdown()
        )
        typer.echo(text, nl=False)  # plain text, to redirect into a file
        return
    _print_effective(config_reference.effective_settings(project))


def _print_effective(effective: EffectiveSettings) -> None:
    from rich.table import Table
    from rich.text import Text

    from esteira.config_schema import toml_value

    table = Table(
        title=f"settings of {effective.root} (stores in {effective.home}, "
        f"from {effective.home_source})",
        title_justify="left",
    )
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", no_wrap=True)
    section = None
    for setting in effective.values:
        here = setting.key.rsplit(".", 1)[0]
        if section is not None and here != section:
            table.add_section()
        section = here
        value = "unset" if setting.value is None else toml_value(setting.value)
        style = "dim" if setting.source == "default" else "bold"
        table.add_row(setting.key, Text(value), Text(setting.source, style=style))
    new_console().print(table)
