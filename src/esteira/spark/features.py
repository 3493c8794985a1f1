"""The feature store's work on Spark: materializing a view (its source read and written as
Delta by Spark, the online store refreshed with each entity's latest row) and point-in-time
joins of events to views under the embedded store's rules (`features.store`): each event
gets the latest values observed at or before its time, never after, none older than the
view's TTL, matched on the entity keys (on time alone for a global view).

A view's `transform` and a service's `derive` are the project's pandas functions: Spark runs
them on each slice of rows (`mapInPandas`), as the service runs `derive` on each request.
They must work row by row (a derive does already, since it serves single requests); a
transform that needs the whole source at once (a group-by) needs the embedded engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esteira.features.definitions import FeatureError
from esteira.spark.tables import read_table, replace_table

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from esteira.features.definitions import FeatureService, FeatureView
    from esteira.features.store import FeatureStore

TIME, SIDE, FOUND = "_esteira_time", "_esteira_side", "_esteira_found"


def materialize_spark(store: FeatureStore, name: str, spark: SparkSession) -> dict[str, Any]:
    """`FeatureStore.materialize` on Spark: the view's offline table rebuilt from its source,
    then the online store refreshed with the latest row per entity (the only rows that reach
    the driver)."""
    view = store.view(name)
    rows, _ = read_table(spark, store.lake, view.source)
    if view.transform is not None:
        what = f"feature view '{view.name}': its transform"
        rows = by_slices(rows, view.transform, what, view.transform)
    missing = [c for c in view.columns if c not in rows.columns]
    if missing:
        raise FeatureError(
            f"feature view '{view.name}': source '{view.source}' (after its transform) has "
            f"no column {', '.join(map(repr, missing))}; it has {rows.columns}"
        )
    version, count = replace_table(store.lake, view.offline_table, rows.select(*view.columns))
    written, _ = read_table(spark, store.lake, view.offline_table)
    store.online_store.refresh(view, _aware(_latest(written, view).toPandas(), _times(written)))
    return {"view": view.name, "rows": count, "offline_version": version}


def service_features(
    spark: SparkSession, store: FeatureStore, events: DataFrame, service: FeatureService
) -> DataFrame:
    """`FeatureStore.training_set` of a feature service on Spark: its views as of each
    event's time, then its `derive`."""
    joined = point_in_time(spark, store, events, list(service.views), service.at)
    if service.derive is None:
        return joined
    what = f"feature service '{service.name}': derive"
    return by_slices(joined, service.apply_derive, what, service.derive)


def point_in_time(
    spark: SparkSession,
    store: FeatureStore,
    events: DataFrame,
    views: list[FeatureView],
    at: str | None,
) -> DataFrame:
    """`events` with the features of `views` as they were at each event's time `at`."""
    clash = {f for v in views for f in v.features} & set(events.columns)
    if clash:
        raise FeatureError(f"events already have columns {sorted(clash)} that views add")
    joined = events
    for view in views:
        missing = [e for e in view.entities if e not in events.columns]
        if missing or (view.timestamp and at is None):
            need = missing or ["at= (the events' time column)"]
            raise FeatureError(f"joining view '{view.name}' needs {', '.join(need)}")
        table, _ = read_table(spark, store.lake, view.offline_table)
        if view.timestamp and at:
            joined = _as_of(joined, table, view, at)
        else:
            joined = joined.join(table.select(*view.entities, *view.features),
                                 list(view.entities), "left")  # fmt: skip
    return joined.select(*events.columns, *[f for v in views for f in v.features])


def _as_of(events: DataFrame, table: DataFrame, view: FeatureView, at: str) -> DataFrame:
    """Each event with the view's latest row at or before its time: the view's rows and the
    events merged in time order per entity (a row at the event's very time first), each
    event taking the last row before it; values older than the TTL dropped."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = list(view.entities)
    observed = table.where(F.col(view.timestamp).isNotNull())
    for key in keys:  # a missing key matches nothing, as in the embedded join
        observed = observed.where(F.col(key).isNotNull())
    values = F.struct(F.col(view.timestamp).alias("at"), *[F.col(f) for f in view.features])
    rows = observed.select(*keys, F.col(view.timestamp).alias(TIME), F.lit(0).alias(SIDE),
                           values.alias(FOUND))  # fmt: skip
    asking = events.select("*", F.col(at).alias(TIME), F.lit(1).alias(SIDE),
                           F.lit(None).cast(rows.schema[FOUND].dataType).alias(FOUND))  # fmt: skip
    order = Window.partitionBy(*keys).orderBy(TIME, SIDE)
    latest = F.last(FOUND, ignorenulls=True).over(order.rowsBetween(Window.unboundedPreceding, 0))
    merged = rows.unionByName(asking, allowMissingColumns=True).withColumn(FOUND, latest)
    fresh = F.lit(True)
    if view.ttl:
        age = F.unix_micros(F.col(TIME)) - F.unix_micros(F.col(f"{FOUND}.at"))
        fresh = age <= int(view.ttl.total_seconds() * 1_000_000)
    features = [F.when(fresh, F.col(f"{FOUND}.{f}")).alias(f) for f in view.features]
    return merged.where(F.col(SIDE) == 1).select(*events.columns, *features)


def _latest(table: DataFrame, view: FeatureView) -> DataFrame:
    """The latest row per entity (of a global view, its latest row), as the online store
    keeps it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not view.timestamp:
        return table.dropDuplicates(list(view.entities)) if view.entities else table
    if view.is_global:
        return table.orderBy(F.col(view.timestamp).desc()).limit(1)
    order = Window.partitionBy(*view.entities).orderBy(F.col(view.timestamp).desc())
    return table.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def by_slices(
    frame: DataFrame,
    function: Callable[[pd.DataFrame], pd.DataFrame],
    what: str,
    code: Callable[..., Any],
) -> DataFrame:
    """`function` run by Spark on each slice of `frame`'s rows (`code`: the project's
    function it calls); its output's columns and types read from its result on the first
    thousand rows."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    times = _times(frame)

    def run(rows: pd.DataFrame) -> pd.DataFrame:
        return function(_aware(rows, times))

    sample = run(frame.limit(1000).toPandas())
    if sample is None or not hasattr(sample, "columns"):
        raise FeatureError(f"{what} must return a DataFrame, got {type(sample).__name__}")
    schema = pa.Schema.from_pandas(sample, preserve_index=False)
    vague = [f.name for f in schema if pa.types.is_null(f.type)]
    if vague:
        raise FeatureError(f"{what} gives columns with no values in the first thousand rows, "
                           f"whose types Spark cannot tell: {vague}")  # fmt: skip
    _by_value(code)
    return frame.mapInPandas(lambda slices: map(run, slices), from_arrow_schema(schema))


def _times(frame: DataFrame) -> list[str]:
    from pyspark.sql.types import TimestampType

    return [f.name for f in frame.schema.fields if isinstance(f.dataType, TimestampType)]


def _aware(rows: pd.DataFrame, times: list[str]) -> pd.DataFrame:
    """`rows` with the times Spark hands over naive (in its session's zone, UTC) made aware,
    as the embedded engine has them."""
    for column in times:
        rows[column] = rows[column].dt.tz_localize("UTC")
    return rows


def _by_value(code: Callable[..., Any]) -> None:
    """The project's module that defines `code` sent to Spark's workers with it: they have
    esteira and the libraries, not the project's folder."""
    import sys

    from pyspark import cloudpickle

    module = sys.modules.get(code.__module__)
    if module is not None and not code.__module__.startswith(("esteira.", "__main__")):
        cloudpickle.register_pickle_by_value(module)
