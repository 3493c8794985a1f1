"""`esteira dashboard`: the read-only web page of the whole loop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console


def dashboard(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8050,
    mlflow_url: Annotated[
        str, typer.Option(help="The MLflow UI's address, for links to runs and versions.")
    ] = "http://127.0.0.1:5000",
) -> None:
    """Serve a read-only web page of the whole loop on 127.0.0.1: champions, the maturity
    scorecard, pipeline runs, CT runs, gate decisions and alias history, drift and metrics
    over batches, alerts, quarantined batches and the prediction log. Writes to no store.

    Example: esteira dashboard -p examples/flight_delays --port 8050
    """
    import uvicorn

    from esteira.config import load_settings
    from esteira.dashboard.app import create_app

    settings = load_settings(project)
    app = create_app(settings.root, settings.env, mlflow_url, shown_root=str(project))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))  # fmt: skip
    new_console().print(f"dashboard of {settings.name} ({settings.env}) on http://127.0.0.1:{port}"
                        " (Ctrl+C stops it)", highlight=False)  # fmt: skip
    server.run()
    if not server.started:  # the port was taken
        raise typer.Exit(1)
