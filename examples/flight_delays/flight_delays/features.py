"""Features of a departure, joined point-in-time in DuckDB: the weather at the origin as
last observed at the scheduled departure (never after it), and the plane's age and seats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira import Context, step

if TYPE_CHECKING:
    import pandas as pd

TARGET = "delayed"
SEGMENT = "origin"
CATEGORICAL = ["carrier", "origin", "dest"]
NUMERIC = [
    "hour",
    "weekday",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
    "plane_age",
    "seats",
]
FEATURES = CATEGORICAL + NUMERIC
DELAY_MINUTES = 15

_SQL = f"""
WITH departures AS (
    SELECT *, time_hour + to_minutes(minute) AS scheduled_at
    FROM flights
    WHERE dep_delay IS NOT NULL  -- cancelled flights have no departure to predict
)
SELECT
    d.scheduled_at, d.batch, d.carrier, d.origin, d.dest,
    d.hour, isodow(d.scheduled_at) AS weekday, d.distance,
    w.temp, w.dewp, w.humid, w.wind_dir, w.wind_speed, w.wind_gust, w.precip, w.pressure, w.visib,
    d.year - p.year AS plane_age, p.seats,
    d.dep_delay > {DELAY_MINUTES} AS {TARGET}
FROM departures d
ASOF LEFT JOIN weather w ON d.origin = w.origin AND d.scheduled_at >= w.time_hour
LEFT JOIN planes p ON d.tailnum = p.tailnum
ORDER BY d.scheduled_at, d.carrier, d.flight
"""


@step
def features(ctx: Context, flights: pd.DataFrame) -> pd.DataFrame:
    import duckdb

    weather = ctx.read_table("raw_weather")  # all of it: the last hour before a month matters too
    planes = ctx.read_table("raw_planes")
    with duckdb.connect() as con:
        for name, df in {"flights": flights, "weather": weather, "planes": planes}.items():
            con.register(name, df)
        table = con.sql(_SQL).df()
    table[NUMERIC] = table[NUMERIC].astype("float64")  # missing values as NaN, as models expect
    table[TARGET] = table[TARGET].astype(int)
    ctx.log_metrics({"rows": len(table), "delay_rate": table[TARGET].mean()})
    return table
