"""The online store: one SQLite table per view with the latest row of each entity (of a
global view: its latest row), swapped whole in one transaction (readers see the old or the
new table, never a mix), and read by key, so a request touches only its own entities.

Reads go through one read-only connection per thread, kept while the file is the same (a
connection costs more than a request's lookup): SQLite reads each statement from the last
committed state, so a swapped table is seen at the next lookup.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.features.definitions import FeatureError, FeatureView

if TYPE_CHECKING:
    import pandas as pd

KEYS_PER_QUERY = 500  # well under SQLite's limit of bound parameters


class OnlineStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._readers = threading.local()

    def refresh(self, view: FeatureView, table: pd.DataFrame) -> None:
        """Keep the latest row per entity of the view's offline `table` (of a global view,
        its latest row)."""
        latest = table
        if view.is_global:
            latest = table.sort_values(view.timestamp, kind="stable").tail(1).copy()
        else:
            if view.timestamp:
                latest = table.sort_values(view.timestamp).groupby(list(view.entities)).tail(1)
            latest = latest.drop_duplicates(list(view.entities), keep="last").copy()
        if view.timestamp:
            latest[view.timestamp] = latest[view.timestamp].astype(str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = f"{view.name}__staging"
        with closing(sqlite3.connect(self.path, timeout=30)) as con:
            with con:
                con.execute(f'DROP TABLE IF EXISTS "{staging}"')
                latest.to_sql(staging, con, index=False)
            # The swap in one explicit transaction: Python's sqlite3 opens none for DDL, and
            # a reader between the DROP and the RENAME found no table at all.
            con.isolation_level = None
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(f'DROP TABLE IF EXISTS "{view.name}"')  # its index goes with it
                con.execute(f'ALTER TABLE "{staging}" RENAME TO "{view.name}"')
                if not view.is_global:
                    keys = ", ".join(f'"{e}"' for e in view.entities)
                    con.execute(f'CREATE UNIQUE INDEX "{view.name}_keys" ON "{view.name}" ({keys})')
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def lookup(self, view: FeatureView, keys: Mapping[str, Any], rows: int) -> dict[str, list[Any]]:
        """The stored row for each of `rows` rows of entity `keys` (a DataFrame, or NumPy
        arrays by name), as columns aligned with them (None where an entity has no row):
        the view's entities, its timestamp (as stored) and features. Plain lists rather
        than a merge: a request has a few rows, and pandas' fixed costs would be most of its
        latency. A global view's one row goes to every row."""
        columns = view.columns
        if view.is_global:
            found = self._read(view, f'SELECT {_names(columns)} FROM "{view.name}"')
            row = found[0] if found else (None,) * len(columns)
            return {c: [row[j]] * rows for j, c in enumerate(columns)}
        entities = list(view.entities)
        wanted = list(zip(*(keys[e].tolist() for e in entities), strict=True))
        # JSON numbers arrive as floats; 1545.0 and 1545 are the same dict key, as in SQL.
        distinct = list({k for k in wanted if not any(is_missing(v) for v in k)})
        one = "(" + ", ".join("?" * len(entities)) + ")"
        stored: dict[tuple, tuple] = {}
        for start in range(0, len(distinct), KEYS_PER_QUERY):
            chunk = distinct[start : start + KEYS_PER_QUERY]
            sql = (
                f'SELECT {_names(columns)} FROM "{view.name}" WHERE ({_names(entities)}) IN '
                f"(VALUES {', '.join([one] * len(chunk))})"
            )
            for row in self._read(view, sql, [v for key in chunk for v in key]):
                stored[row[: len(entities)]] = row
        empty = (None,) * len(columns)
        found = [stored.get(k, empty) for k in wanted]
        return {c: [row[j] for row in found] for j, c in enumerate(columns)}

    def declared(self, view: FeatureView) -> dict[str, str]:
        """The view's columns' SQLite types as the table was written (pandas' `to_sql`
        declares the frame's dtypes: REAL, INTEGER, TEXT, TIMESTAMP)."""
        con = self._reader(view)
        known = self._readers.declared
        if view.name not in known:
            info = con.execute(f'PRAGMA table_info("{view.name}")').fetchall()
            known[view.name] = {row[1]: str(row[2]).upper() for row in info}
        return known[view.name]

    def _read(self, view: FeatureView, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._reader(view).execute(sql, parameters).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise
            raise FeatureError(
                f"view '{view.name}' is not in the online store: materialize it"
            ) from None

    def _reader(self, view: FeatureView) -> sqlite3.Connection:
        """This thread's read-only connection, opened again when the file is another one
        (replaced, or deleted and made again: its inode or change time differ)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise FeatureError(
                f"the online store is empty ({self.path}): materialize view '{view.name}'"
            ) from None
        identity = (stat.st_dev, stat.st_ino, stat.st_ctime_ns)
        held = getattr(self._readers, "held", None)
        if held is not None and held[0] == identity:
            return held[1]
        if held is not None:
            held[1].close()
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        self._readers.held = (identity, con)
        self._readers.declared = {}  # a changed file may hold other tables
        return con


def _names(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def typed(values: list[Any], declared: str | None) -> Any:
    """Numbers read from a column of SQLite type `declared` as the frame column the same
    data has offline, built directly (pandas' inference costs more than a request's lookup,
    and for a column of only missing values it guesses object): REAL as float64 with NaN,
    INTEGER as int64 (float64 with a missing value). Other types, or a value its type's
    affinity left as it was (text in a REAL column), as the list, for pandas to infer."""
    import numpy as np

    if declared == "INTEGER" and all(type(v) is int for v in values):
        return np.array(values, dtype="int64")  # SQLite's integers are 64-bit
    if declared in ("INTEGER", "REAL", "FLOAT", "DOUBLE"):
        try:
            return np.array([math.nan if v is None else v for v in values], dtype="float64")
        except (TypeError, ValueError):
            return values
    return values


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
