"""The feature store over one lake: views materialized into offline Delta tables
(`features_<view>`) and the online store, point-in-time training sets joined in DuckDB, and
the online features of served requests.

`training_set` joins views to labelled events with an ASOF join: each event gets the latest
feature values observed at or before its time, never after, and none older than the TTL
(matched on the entity keys too, except for a global view, which has none). Online, a
request gets the latest value of each entity (or the global view's latest) under the same
rule, measured at the request's time. A feature service applies its `derive` after either,
so a model is trained and served on features computed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.errors import NotFound
from esteira.features.definitions import FeatureError, FeatureService, FeatureView
from esteira.features.online import OnlineStore, is_missing, typed
from esteira.times import NAT, iso_ns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from esteira.lake import Lake


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
        self.online_store = OnlineStore(self.online_path)
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
        self.online_store.refresh(view, table)
        return {"view": view.name, "rows": len(table), "offline_version": version}

    # reading -------------------------------------------------------------------------

    def training_set(
        self,
        events: pd.DataFrame,
        views: Sequence[str | FeatureView] | FeatureService,
        at: str | None = None,
    ) -> pd.DataFrame:
        """`events` with the features of `views` as they were at each event's time `at`; for
        a feature service, its views at its `at`, then its `derive`."""
        if isinstance(views, FeatureService):
            service = views
            _require_fields(service, events)
            joined = self.training_set(events, list(service.views), at=service.at)
            return service.apply_derive(joined)
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
            keys = [f'e."{k}" = v{i}."{k}"' for k in view.entities]
            if view.timestamp:
                on = " AND ".join([*keys, f'e."{at}" >= v{i}."{view.timestamp}"'])
                joins.append(f"ASOF LEFT JOIN v{i} ON {on}")
            else:
                on = " AND ".join(keys)
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
        self,
        name: str | FeatureView,
        keys: pd.DataFrame | None = None,
        at: datetime | pd.Series | None = None,
    ) -> pd.DataFrame:
        """The latest values of the view's features for each row of entity `keys` (same
        order), as known at `at` (a time, or one per row; default now): missing entities,
        values observed after `at` and values older than the TTL at `at` come back empty.
        A global view needs no keys: one row per time in `at` (one row for a single time)."""
        import pandas as pd

        view = self.view(name)
        if keys is None:
            if not view.is_global:
                raise FeatureError(
                    f"view '{view.name}' is keyed by {list(view.entities)}: pass keys"
                )
            keys = pd.DataFrame(index=range(len(at) if isinstance(at, pd.Series) else 1))
        columns = {e: keys[e].to_numpy() for e in view.entities}
        return pd.DataFrame(columns | self._online_values(view, keys, len(keys), at))

    def _online_values(
        self, view: FeatureView, keys: Mapping[str, Any], rows: int, at: Any
    ) -> dict[str, list[Any]]:
        found = self.online_store.lookup(view, keys, rows)
        features = {f: found[f] for f in view.features}
        if view.timestamp:
            usable = _usable(view, found[view.timestamp], at)
            features = {f: [v if ok else None for v, ok in zip(values, usable, strict=True)]
                        for f, values in features.items()}  # fmt: skip
        return features

    def serving_set(
        self, service: FeatureService, requests: pd.DataFrame | Mapping[str, Any]
    ) -> tuple[pd.DataFrame, dict[str, list[bool]]]:
        """Requests (the service's request fields: a DataFrame, or arrays by name as a
        DataFrame takes them, times tz-aware) with their online features (empty where none
        is fresh) and derived columns; and per view, which rows it had no value for."""
        import pandas as pd

        columns, missed = self.serving_columns(service, requests)
        return pd.DataFrame(columns, copy=False), missed

    def serving_columns(
        self, service: FeatureService, requests: pd.DataFrame | Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, list[bool]]]:
        """What `serving_set` gives, as columns by name in its order (arrays, or Series
        from a derive that returns a DataFrame): a columnar derive's requests build no
        DataFrame (the model's is the one they need)."""
        import pandas as pd

        _require_fields(service, requests)
        if isinstance(requests, pd.DataFrame):
            rows = len(requests)
            # Times as their array: `to_numpy` would give zone-aware ones as objects.
            columns = {
                c: v.array if v.dtype.kind == "M" else v.to_numpy() for c, v in requests.items()
            }
        else:  # the service's own: no frame to build
            columns = dict(requests)
            rows = len(next(iter(columns.values()), ()))
        at = requests[service.at] if service.at else None
        missed = {}
        for view in service.views:
            found = self._online_values(view, requests, rows, at)
            values = zip(*found.values(), strict=True)
            missed[view.name] = [all(is_missing(v) for v in row) for row in values]
            declared = self.online_store.declared(view)
            columns |= {f: typed(v, declared.get(f)) for f, v in found.items()}
        if service.derive is None:
            return columns, missed
        if service.columnar:
            return columns | service.derived_columns(columns), missed
        return dict(service.apply_derive(pd.DataFrame(columns)).items()), missed


def _usable(view: FeatureView, observed: list[Any], at: Any) -> Any:
    """Per row: observed at or before `at` and, with a TTL, not longer before it. Compared
    in integer nanoseconds when every time fits them (a request's few rows cost pandas'
    fixed costs otherwise), else as pandas compares them."""
    seen, when = _stored_ns(observed), _instants(at, len(observed))
    if seen is not None and when is not None:
        usable = (seen <= when) & (seen != NAT) & (when != NAT)
        ttl: Any = view.ttl // timedelta(microseconds=1) * 1000 if view.ttl else None
    else:
        import pandas as pd

        seen = pd.DatetimeIndex(pd.to_datetime(observed, utc=True, format="ISO8601"))
        when = pd.Timestamp.now(tz="UTC") if at is None else pd.to_datetime(at, utc=True)
        if isinstance(when, pd.Series):
            when = pd.DatetimeIndex(when)
        usable, ttl = seen <= when, view.ttl
    if ttl:
        usable &= when - seen <= ttl
    return usable


def _stored_ns(observed: list[Any]) -> np.ndarray | None:
    """The online store's observation times (as written from a datetime column; None for
    no row) in nanoseconds; None if one is in another form."""
    import numpy as np

    ns = [NAT if v is None else iso_ns(v) if isinstance(v, str) else None for v in observed]
    return None if None in ns else np.array(ns, dtype="int64")


def _instants(at: Any, rows: int) -> np.ndarray | None:
    """`at` (a time, or one per row; None for now) in nanoseconds, one per row; None if
    one is beyond what nanoseconds hold."""
    import numpy as np
    import pandas as pd

    if at is None:
        return np.full(rows, time.time_ns(), dtype="int64")
    when = at if isinstance(at, pd.DatetimeIndex) and at.tz else pd.to_datetime(at, utc=True)
    try:
        if isinstance(when, pd.Timestamp):
            return np.full(rows, when.as_unit("ns").value, dtype="int64")
        if not isinstance(when, pd.DatetimeIndex):
            when = pd.DatetimeIndex(when)
        return when.as_unit("ns").asi8
    except pd.errors.OutOfBoundsDatetime:
        return None


def _require_fields(service: FeatureService, frame: pd.DataFrame | Mapping[str, Any]) -> None:
    missing = [f for f in service.fields if f not in frame]
    if missing:
        raise FeatureError(
            f"feature service '{service.name}' needs columns {missing}; got {list(frame)}"
        )


def _fresh_sql(view: FeatureView, alias: str, at: str) -> str:
    seconds = view.ttl.total_seconds() if view.ttl else 0
    return f"{at} - {alias}.\"{view.timestamp}\" <= INTERVAL '{seconds} seconds'"
