"""`esteira db`: the metadata store's schema revision, and its upgrade."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console

if TYPE_CHECKING:
    from esteira.metadata import MetadataStore

app = typer.Typer(help="The metadata store's schema: its revision, its upgrade.",
                  no_args_is_help=True)  # fmt: skip


@app.command("status")
def db_status(project: ProjectOption = Path("."), env: EnvOption = None) -> None:
    """The metadata store (its URL without a password), its schema revision and this
    esteira's.

    Example: esteira db status --project examples/flight_delays
    """
    from esteira import migrations

    store = _store(project)
    revision = store.revision() or "none (new, or made before revisions)"
    new_console().print(f"metadata store {store.shown}: schema revision {revision}; this esteira "
                        f"uses {migrations.HEAD}")  # fmt: skip


@app.command("upgrade")
def db_upgrade(project: ProjectOption = Path("."), env: EnvOption = None) -> None:
    """Bring the metadata store's schema to this esteira's revision. A local store is
    upgraded when it is opened; a shared one (PostgreSQL) only by this command, once, when
    every host is to run this esteira.

    Example: esteira db upgrade --project examples/flight_delays
    """
    store = _store(project)
    before = store.revision() or "none"
    after = store.upgrade()
    new_console().print(f"metadata store {store.shown}: schema revision {before} → {after}")


def _store(project: Path) -> MetadataStore:
    from esteira.config import load_settings
    from esteira.metadata import MetadataStore

    settings = load_settings(project)
    settings.home.mkdir(parents=True, exist_ok=True)
    return MetadataStore(settings.metadata_url, migrate=False)
