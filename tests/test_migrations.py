"""The metadata store's schema revisions (Alembic): a new store is made by them, on SQLite
and PostgreSQL, exactly as the models say; a store made before revisions is adopted with
its history; a store of an unknown revision, or a shared one that is behind, is refused in
one line; `esteira db upgrade` upgrades."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from test_cli import esteira

from esteira import migrations
from esteira.metadata import AliasChange, Base, MetadataSchemaError, MetadataStore


def test_head_is_the_newest_revision_in_versions():
    assert migrations.newest() == migrations.HEAD
    assert migrations.BASELINE in migrations.known()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_revisions_make_exactly_the_schema_of_the_models(backend, tmp_path, request):
    """A model changed without a revision fails here: add one with
    `alembic -c src/esteira/migrations/alembic.ini revision --autogenerate -m ...`."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'esteira.db'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    store = MetadataStore(url)
    assert store.revision() == migrations.HEAD
    with create_engine(url).connect() as con:
        differences = compare_metadata(MigrationContext.configure(con), Base.metadata)
    assert differences == []


def test_a_store_made_before_revisions_is_adopted_with_its_history(tmp_path: Path):
    path = tmp_path / "esteira.db"
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    older = [t for name, t in Base.metadata.tables.items() if name != "alias_intents"]
    Base.metadata.create_all(engine, tables=older)  # as create_all made it, a table ago
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE esteira_schema (version INTEGER PRIMARY KEY)")
        con.execute("INSERT INTO esteira_schema VALUES (1)")
    engine.dispose()
    before = MetadataStore(url, migrate=False)
    before.add(AliasChange(model="m", alias="champion", action="promote", to_version="3",
                           actor="me", reason="kept"))  # fmt: skip
    store = MetadataStore(url)
    assert store.revision() == migrations.HEAD
    assert [c.to_version for c in store.alias_history("m", "champion")] == ["3"]
    assert store.alias_intents("m") == []  # the table it lacked is there


def test_a_store_of_a_revision_this_esteira_does_not_know_is_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'esteira.db'}"
    MetadataStore(url)
    with sqlite3.connect(tmp_path / "esteira.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MetadataSchemaError, match="revision 9999, which this esteira does not"):
        MetadataStore(url)


def test_a_shared_store_behind_waits_for_esteira_db_upgrade(postgres_server, monkeypatch):
    url = postgres_server.new_database()
    MetadataStore(url)
    monkeypatch.setattr(migrations, "HEAD", "0002")  # as if this esteira were newer
    monkeypatch.setattr(migrations, "known", lambda: {"0001", "0002"})
    with pytest.raises(MetadataSchemaError, match="run `esteira db upgrade` once"):
        MetadataStore(url)


def test_esteira_db_upgrade_and_status(write_project):
    root = write_project("")
    status = esteira("db", "status", "-p", str(root))
    assert status.returncode == 0 and "schema revision none" in status.stdout
    upgraded = esteira("db", "upgrade", "-p", str(root))
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"none → {migrations.HEAD}" in upgraded.stdout
    again = esteira("db", "status", "-p", str(root))
    assert f"schema revision {migrations.HEAD}; this esteira uses {migrations.HEAD}" in again.stdout
