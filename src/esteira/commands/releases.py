"""`esteira release`, `esteira deploy`, `esteira releases`: the CD of the pipeline's code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console


def release(
    project: ProjectOption = Path("."),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the release's id (for scripts).")
    ] = False,
) -> None:
    """Build an immutable release of the project's code: its source files and esteira.toml,
    the installed packages, the git commit and any uncommitted files. The same tree gives
    the same release.

    Example: esteira release -p examples/flight_delays
    """
    from esteira import releases
    from esteira.config import load_settings

    built, folder = releases.build(load_settings(project))
    if quiet:
        print(built.id)
        return
    console = new_console()
    console.print(f"release [bold]{built.id}[/] of {built.project}: {len(built.files)} files, "
                  f"{len(built.packages)} packages, git {built.git_commit or '-'}")  # fmt: skip
    if built.dirty:
        console.print(f"[yellow]built from uncommitted changes[/] ({', '.join(built.dirty_files)}):"
                      " it may go to dev and staging, not to prod")  # fmt: skip
    console.print(f"  {folder}\n  next: esteira deploy {built.id} --env staging")


def deploy(
    release_id: Annotated[
        str,
        typer.Argument(
            metavar="RELEASE", help="Release id (or its first characters); default: the newest."
        ),
    ] = "",
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    reason: Annotated[str, typer.Option(help="Why; kept with the deployment.")] = "deploy",
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Go back to the release deployed before.")
    ] = False,
) -> None:
    """Make a release the code an environment runs (staging and prod run only releases).

    Example: esteira deploy 3f9a1c --env staging -p examples/flight_delays
    """
    from esteira import releases
    from esteira.project import open_project

    p = open_project(project)
    if rollback:
        done = releases.rollback(p.settings, p.metadata, reason)
    else:
        chosen = release_id or releases.newest(p.settings)
        done = releases.deploy(p.settings, p.metadata, chosen, reason)
    new_console().print(f"{p.settings.env} now runs release {done.release} ({done.action} by "
                        f"{done.actor}: {done.reason})")  # fmt: skip


def list_releases(project: ProjectOption = Path("."), env: EnvOption = None) -> None:
    """List the project's releases and what an environment ran, newest first.

    Example: esteira releases --env staging -p examples/flight_delays
    """
    from rich.table import Table

    from esteira import releases
    from esteira.project import open_project

    p = open_project(project)
    table = Table(title=f"deployments to {p.settings.env}")
    for column in ("at (UTC)", "action", "release", "by", "why"):
        table.add_column(column)
    for d in reversed(p.metadata.deployments(p.settings.env)):
        table.add_row(f"{d.at:%Y-%m-%d %H:%M}", d.action, d.release, d.actor, d.reason)
    console = new_console()
    folder = releases.releases_folder(p.settings)
    built = sorted(folder.glob("*/release.json"), key=lambda f: f.stat().st_mtime, reverse=True)
    console.print("releases: " + (", ".join(f.parent.name for f in built) or "none yet"))
    console.print(table)
