"""`esteira export`: the project's jobs for an orchestrator (Databricks, Airflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esteira.commands.common import ProjectOption, new_console

app = typer.Typer(help="The project's jobs for an orchestrator: Databricks, Airflow.",
                  no_args_is_help=True)  # fmt: skip


@app.command("databricks")
def export_databricks(
    project: ProjectOption = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Folder of the bundle (default: the project's).")
    ] = None,
) -> None:
    """Write a Databricks asset bundle: databricks.yml (a target per environment) and
    resources/NAME.jobs.yml (continuous training, monitoring, batch inference, CD).

    Example: esteira export databricks -p examples/flight_delays
    """
    import yaml

    from esteira.config import load_settings
    from esteira.export.databricks import bundle_files

    settings = load_settings(project)
    folder = (out or settings.root).resolve()
    files = bundle_files(settings, folder)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content, sort_keys=False, width=100))
    console = new_console()
    for path in files:
        console.print(f"wrote {path}")
    console.print("then: databricks bundle deploy -t staging --var metadata_url=... "
                  "--var lake=...")  # fmt: skip


@app.command("airflow")
def export_airflow(
    project: ProjectOption = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="The DAG file (default: NAME_dags.py in the project).")
    ] = None,
    project_path: Annotated[
        str | None, typer.Option(help="Where the Airflow workers find the project.")
    ] = None,
) -> None:
    """Write an Airflow DAG file: a DAG per job and environment, each running one esteira
    command; put it in Airflow's dags folder.

    Example: esteira export airflow -p examples/flight_delays --out dags/flight_delays.py
    """
    from esteira.config import load_settings
    from esteira.export.airflow import dag_file

    settings = load_settings(project)
    path = (out or settings.root / f"{settings.name}_dags.py").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dag_file(settings, Path(project_path or settings.root)))
    new_console().print(f"wrote {path}")
