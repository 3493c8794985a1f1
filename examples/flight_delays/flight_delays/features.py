"""Features of a departure: the weather at the origin as last observed at the scheduled
departure (never after it) and the plane's age and seats, through the feature store's
`departure` service, the same one that serves requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira import Context, step
from flight_delays.feature_views import departure, weather_at_origin

if TYPE_CHECKING:
    import pandas as pd

TARGET = "delayed"
SEGMENT = "origin"
CATEGORICAL = ["carrier", "origin", "dest"]
NUMERIC = ["hour", "weekday", "distance", *weather_at_origin.features, "plane_age", "seats"]
FEATURES = CATEGORICAL + NUMERIC
DELAY_MINUTES = 15


@step
def materialize(ctx: Context, ingest: dict) -> dict:
    """Refresh the feature store (offline and online) from the data just landed."""
    return {view.name: ctx.features.materialize(view) for view in departure.views}


@step
def features(ctx: Context, flights: pd.DataFrame, materialize: dict) -> pd.DataFrame:
    """One row per departure that took place (cancelled flights have none to predict), with
    the weather at its origin and its plane as the feature store knew them at the
    scheduled time."""
    import pandas as pd

    departures = flights[flights["dep_delay"].notna()]
    scheduled_at = departures["time_hour"] + pd.to_timedelta(departures["minute"], unit="m")
    events = pd.DataFrame(
        {
            "scheduled_at": scheduled_at,
            "batch": departures["batch"],
            "flight": departures["flight"],
            "carrier": departures["carrier"],
            "origin": departures["origin"],
            "dest": departures["dest"],
            "tailnum": departures["tailnum"],
            "distance": departures["distance"],
            TARGET: (departures["dep_delay"] > DELAY_MINUTES).astype(int),
        }
    )
    table = ctx.features.training_set(events, departure)
    table = table.sort_values(["scheduled_at", "carrier", "flight"], ignore_index=True)
    table[NUMERIC] = table[NUMERIC].astype("float64")  # missing values as NaN, as models expect
    ctx.log_metrics({"rows": len(table), "delay_rate": table[TARGET].mean()})
    table = table[["scheduled_at", "batch", "flight", "tailnum", *FEATURES, TARGET]]
    # Kept in the lake too, by batch: what `esteira predict` and `esteira monitor --input` read.
    batches = ", ".join(f"'{b}'" for b in sorted(table["batch"].unique()))
    ctx.replace_table(
        "flight_features", table, where=f"batch IN ({batches})", partition_by=["batch"]
    )
    return table
