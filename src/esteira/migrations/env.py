"""Alembic's entry: migrations run on the connection esteira passes (`upgrade`), or, for
`alembic revision --autogenerate`, on a scratch SQLite store compared with the models."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
models = context.config.attributes.get("models")
if connection is None:  # the alembic command line, writing a new revision
    from sqlalchemy import create_engine

    from esteira.metadata import Base

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()
    models = Base.metadata

# SQLite alters a table by copying it (batch mode): the same revisions run on both.
context.configure(connection=connection, target_metadata=models,
                  render_as_batch=True, compare_type=True)  # fmt: skip
with context.begin_transaction():
    context.run_migrations()
