"""The feature store: feature views declared in code, an offline store of Delta tables,
point-in-time training sets joined in DuckDB, and an online store (SQLite) of the latest
values per entity. Training and serving read the same definitions.

A view names its source table, entity keys, event timestamp, features, an optional
transformation and a TTL. `materialize` writes the view's offline table and refreshes its
online table. `training_set` joins views to labelled events with an ASOF join: each event
gets the latest feature values observed at or before its time, never after, and none older
than the TTL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.errors import EsteiraError, NotFound

if TYPE_CHECKING:
    import pandas as pd

    from esteira.lake import Lake

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class FeatureError(EsteiraError):
    """A feature view is ill-defined or its data does not fit its definition."""


@dataclass(frozen=True)
class FeatureView:
    name: str
    source: str
    entities: tuple[str, ...]
    features: tuple[str, ...]
    timestamp: str | None = None
    """Event time of each row; None for static attributes (joined on the keys alone)."""
    ttl: timedelta | None = None
    """Values older than this at the event's time (or at request time, online) are missing."""
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    description: str = ""

    @property
    def fingerprint(self) -> str:
        """Changes with the definition, so steps that use the view rerun when it changes."""
        import hashlib
        import inspect

        transform = ""
        if self.transform is not None:
            try:
                transform = inspect.getsource(self.transform)
            except (OSError, TypeError):
                transform = repr(self.transform.__code__.co_code)
        fields = (self.name, self.source, self.entities, self.features, self.timestamp,
                  self.ttl, transform)  # fmt: skip
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]

    @property
    def offline_table(self) -> str:
        return f"features_{self.name}"

    @property
    def columns(self) -> list[str]:
        return [*self.entities, *([self.timestamp] if self.timestamp else []), *self.features]


def feature_view(
    name: str,
    *,
    source: str,
    entities: Sequence[str],
    features: Sequence[str],
    timestamp: str | None = None,
    ttl: timedelta | None = None,
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    description: str = "",
) -> FeatureView:
    """Declare a feature view (see `FeatureView`)."""
    if not _NAME.match(name):
        raise FeatureError(f"feature view name {name!r}: use lower-case letters, digits, _")
    if not entities or not features:
        raise FeatureError(f"feature view '{name}' needs at least one entity and one feature")
    return FeatureView(name, source, tuple(entities), tuple(features), timestamp, ttl, transform,
                       description)  # fmt: skip


class FeatureStore:
    """Feature views over one lake. `read` and `write` default to the lake's own; a step's
    context passes its recording versions, so the lineage shows what was read and written."""

    def __init__(
        self,
        views: Mapping[str, FeatureView],
        lake: Lake,
        online_path: Path,
        read: Callable[..., pd.DataFrame] | None = None,
        write: Callable[..., int] | None = None,
    ) -> None:
        self.views = dict(views)
        self.lake = lake
        self.online_path = Path(online_path)
        self._read = read or (lambda table, **kw: lake.read(table, **kw)[0])
        self._write = write or (lambda table, df: lake.replace(table, df))

    def view(self, name: str | FeatureView) -> FeatureView:
        if isinstance(name, FeatureView):
            return name
        try:
            return self.views[name]
        except KeyError:
            known = ", ".join(sorted(self.views)) or "none"
            raise NotFound(f"no feature view '{name}' (views: {known})") from None

    # materialization -----------------------------------------------------------------

    def materialize(self, name: str | FeatureView) -> dict[str, Any]:
        """Rebuild the view's offline table from its source and refresh its online table."""
        view = self.view(name)
        rows = self._read(view.source)
        if view.transform is not None:
            rows = view.transform(rows)
        missing = [c for c in view.columns if c not in rows.columns]
        if missing:
            raise FeatureError(
                f"feature view '{view.name}': source '{view.source}' (after its transform) has "
                f"no column {', '.join(map(repr, missing))}; it has {list(rows.columns)}"
            )
        table = rows[view.columns].reset_index(drop=True)
        version = self._write(view.offline_table, table)
        self._refresh_online(view, table)
        return {"view": view.name, "rows": len(table), "offline_version": version}

    def _refresh_online(self, view: FeatureView, table: pd.DataFrame) -> None:
        latest = table
        if view.timestamp:
            latest = table.sort_values(view.timestamp).groupby(list(view.entities)).tail(1)
        latest = latest.drop_duplicates(list(view.entities), keep="last").copy()
        if view.timestamp:
            latest[view.timestamp] = latest[view.timestamp].astype(str)
        self.online_path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.online_path) as con:  # one transaction: readers see old or new
            staging = f"{view.name}__staging"
            con.execute(f'DROP TABLE IF EXISTS "{staging}"')
            latest.to_sql(staging, con, index=False)
            con.execute(f'DROP TABLE IF EXISTS "{view.name}"')  # its index goes with it
            con.execute(f'ALTER TABLE "{staging}" RENAME TO "{view.name}"')
            keys = ", ".join(f'"{e}"' for e in view.entities)
            con.execute(f'CREATE UNIQUE INDEX "{view.name}_keys" ON "{view.name}" ({keys})')

    # reading -------------------------------------------------------------------------

    def training_set(
        self, events: pd.DataFrame, views: Sequence[str | FeatureView], at: str | None = None
    ) -> pd.DataFrame:
        """`events` with the features of `views` as they were at each event's time `at`."""
        import duckdb

        chosen = [self.view(v) for v in views]
        clash = {f for v in chosen for f in v.features} & set(events.columns)
        if clash:
            raise FeatureError(f"events already have columns {sorted(clash)} that views add")
        con = duckdb.connect()
        con.register("events", events.reset_index(drop=True).reset_index(names="__row"))
        selects, joins = [], []
        for i, view in enumerate(chosen):
            missing = [e for e in view.entities if e not in events.columns]
            if missing or (view.timestamp and at is None):
                need = missing or ["at= (the events' time column)"]
                raise FeatureError(f"joining view '{view.name}' needs {', '.join(need)}")
            con.register(f"v{i}", self._read(view.offline_table))
            on = " AND ".join(f'e."{k}" = v{i}."{k}"' for k in view.entities)
            if view.timestamp:
                joins.append(f'ASOF LEFT JOIN v{i} ON {on} AND e."{at}" >= v{i}."{view.timestamp}"')
            else:
                joins.append(f"LEFT JOIN v{i} ON {on}")
            fresh = _fresh_sql(view, f"v{i}", f'e."{at}"') if view.ttl and view.timestamp else None
            for f in view.features:
                value = f'v{i}."{f}"'
                selects.append(
                    f'CASE WHEN {fresh} THEN {value} END AS "{f}"' if fresh else f'{value} AS "{f}"'
                )
        sql = f"SELECT e.*, {', '.join(selects)} FROM events e {' '.join(joins)} ORDER BY e.__row"
        return con.sql(sql).df().drop(columns="__row")

    def online(
        self, name: str | FeatureView, keys: pd.DataFrame, now: datetime | None = None
    ) -> pd.DataFrame:
        """The latest values of the view's features for each row of entity `keys` (same order);
        missing entities, and values older than the TTL, come back empty."""
        import pandas as pd

        view = self.view(name)
        with sqlite3.connect(self.online_path) as con:
            found = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (view.name,)
            ).fetchone()
            if found is None:
                raise FeatureError(f"view '{view.name}' is not in the online store: materialize it")
            stored = pd.read_sql(f'SELECT * FROM "{view.name}"', con)
        merged = keys[list(view.entities)].merge(stored, on=list(view.entities), how="left")
        if view.ttl and view.timestamp:
            observed = pd.to_datetime(merged[view.timestamp], utc=True)
            stale = (now or datetime.now(UTC)) - observed > view.ttl
            merged.loc[stale, list(view.features)] = None
        return merged[[*view.entities, *view.features]]


def _fresh_sql(view: FeatureView, alias: str, at: str) -> str:
    seconds = view.ttl.total_seconds() if view.ttl else 0
    return f"{at} - {alias}.\"{view.timestamp}\" <= INTERVAL '{seconds} seconds'"
