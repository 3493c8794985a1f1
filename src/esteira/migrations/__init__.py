"""The metadata store's schema, versioned with Alembic (as MLflow's own store is).

`upgrade(engine)` brings a store to the newest revision: a new store is created by the
revisions, in order; a store made before revisions existed (its tables created whole, an
`esteira_schema` row of version 1) gets the tables it lacks, then is stamped with the first
revision. A new revision (a column, a table, an index) goes in `versions/`:

    alembic -c src/esteira/migrations/alembic.ini revision --autogenerate -m "what changed"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent
BASELINE = "0001"
"""The revision of the schema stores had when revisions began."""
HEAD = "0001"
"""The newest revision (a test checks it is the newest in `versions/`): a store at it opens
without reading the revisions."""


def config(connection: Any = None, models: Any = None) -> Any:
    """Alembic's configuration: the revisions here, run on `connection`, compared with
    `models` (the metadata store's SQLAlchemy MetaData)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(FOLDER))
    cfg.attributes["connection"] = connection
    cfg.attributes["models"] = models
    return cfg


def known() -> set[str]:
    """Every revision in `versions/`."""
    from alembic.script import ScriptDirectory

    return {r.revision for r in ScriptDirectory.from_config(config()).walk_revisions()}


def newest() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config()).get_current_head()


def upgrade(connection: Any, models: Any) -> None:
    """Bring the store on `connection` (in a transaction) to the newest revision; `models`:
    the schema of the baseline, for a store made before revisions."""
    from alembic import command
    from sqlalchemy import inspect

    cfg = config(connection, models)
    tables = set(inspect(connection).get_table_names())
    if "esteira_schema" in tables and "alembic_version" not in tables:
        models.create_all(connection)  # adopted: the tables it lacked, then the baseline
        command.stamp(cfg, BASELINE)
    command.upgrade(cfg, "head")
