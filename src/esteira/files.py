"""Checks on the files esteira's stores live in, before a library opens them: a damaged
file fails with its name and what is wrong, never as a library's traceback or, worse, as
a new empty store."""

from __future__ import annotations

from pathlib import Path


def sqlite_problem(path: Path) -> str | None:
    """What is wrong with an existing SQLite file, or None (also for a file not there
    yet: a new store). Read through SQLite itself: opening and closing the file any other
    way would drop the locks this process's connections hold on it (POSIX locks belong to
    the process, and any close releases them)."""
    import sqlite3
    from contextlib import closing

    if not path.is_file():
        return None
    if path.stat().st_size == 0:
        return "is empty (0 bytes)"
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as con:
            con.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        return "is not an SQLite database" if "not a database" in str(e) else f"is damaged ({e})"
    return None


def sqlite_path(uri: str) -> Path | None:
    """The file of an SQLAlchemy/MLflow `sqlite:///` URI; None for other URIs."""
    if not uri.startswith("sqlite:///"):
        return None
    database = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None
