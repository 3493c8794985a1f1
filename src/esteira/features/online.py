"""The online store: one SQLite table per view with the latest row of each entity (of a
global view: its latest row), swapped whole in one transaction (readers see the old or the
new table, never a mix), and read by key, so a request touches only its own entities."""

from __future__ import annotations

import math
import sqlite3
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

    def lookup(self, view: FeatureView, keys: pd.DataFrame) -> dict[str, list[Any]]:
        """The stored row for each row of `keys`, as columns aligned with `keys` (None where
        an entity has no row): the view's entities, its timestamp (as stored) and features.
        Plain lists rather than a merge: a request has a few rows, and pandas' fixed costs
        would be most of its latency. A global view's one row goes to every row of `keys`."""
        if view.is_global:
            return self._latest(view, len(keys))
        entities = list(view.entities)
        columns = view.columns
        wanted = list(zip(*(keys[e].tolist() for e in entities), strict=True))
        # JSON numbers arrive as floats; 1545.0 and 1545 are the same dict key, as in SQL.
        distinct = list({k for k in wanted if not any(is_missing(v) for v in k)})
        select = ", ".join(f'"{c}"' for c in columns)
        match = "(" + ", ".join(f'"{e}"' for e in entities) + ")"
        one = "(" + ", ".join("?" * len(entities)) + ")"
        stored: dict[tuple, tuple] = {}
        with closing(self._connect(view)) as con:
            for start in range(0, len(distinct), KEYS_PER_QUERY):
                chunk = distinct[start : start + KEYS_PER_QUERY]
                sql = (
                    f'SELECT {select} FROM "{view.name}" WHERE {match} IN '
                    f"(VALUES {', '.join([one] * len(chunk))})"
                )
                for row in con.execute(sql, [v for key in chunk for v in key]):
                    stored[row[: len(entities)]] = row
        empty = (None,) * len(columns)
        rows = [stored.get(k, empty) for k in wanted]
        return {c: [row[j] for row in rows] for j, c in enumerate(columns)}

    def _latest(self, view: FeatureView, rows: int) -> dict[str, list[Any]]:
        select = ", ".join(f'"{c}"' for c in view.columns)
        with closing(self._connect(view)) as con:
            found = con.execute(f'SELECT {select} FROM "{view.name}"').fetchone()
        row = found or (None,) * len(view.columns)
        return {c: [row[j]] * rows for j, c in enumerate(view.columns)}

    def _connect(self, view: FeatureView) -> sqlite3.Connection:
        if not self.path.exists():
            raise FeatureError(
                f"the online store is empty ({self.path}): materialize view '{view.name}'"
            )
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        found = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (view.name,)
        ).fetchone()
        if found is None:
            con.close()
            raise FeatureError(f"view '{view.name}' is not in the online store: materialize it")
        return con


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
