"""Features of a departure: the weather at the origin as last observed at the scheduled
departure (never after it) and the plane's age and seats, through the feature store's
`departure` service, the same one that serves requests.

`departure_events` and `feature_table` are shared with the other flight projects
(examples/arrival_delay, examples/flight_status), which predict other labels of the same
departures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira import Context, step
from flight_delays.feature_views import departure, weather_at_origin

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

TARGET = "delayed"
SEGMENT = "origin"
CATEGORICAL = ["carrier", "origin", "dest"]
NUMERIC = ["hour", "weekday", "distance", *weather_at_origin.features, "plane_age", "seats"]
FEATURES = CATEGORICAL + NUMERIC
DELAY_MINUTES = 15
TABLE = "flight_features"


@step
def materialize(ctx: Context, ingest: dict) -> dict:
    """Refresh the feature store (offline and online) from the data just landed."""
    return {view.name: ctx.features.materialize(view) for view in departure.views}


@step
def features(ctx: Context, flights: pd.DataFrame, materialize: dict) -> pd.DataFrame:
    """One row per departure that took place (cancelled flights have none to predict), with
    the weather at its origin and its plane as the feature store knew them at the
    scheduled time."""
    departures = flights[flights["dep_delay"].notna()]
    events = departure_events(departures)
    events[TARGET] = (departures["dep_delay"] > DELAY_MINUTES).astype(int)
    table = feature_table(ctx, events, TARGET)
    ctx.log_metrics({"delay_rate": table[TARGET].mean()})
    return table


def departure_events(flights: pd.DataFrame) -> pd.DataFrame:
    """The departures as the model's callers know them (the `departure` service's request
    fields), with their batch and flight number, aligned with `flights`' rows."""
    import pandas as pd

    scheduled_at = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="m")
    return pd.DataFrame(
        {
            "scheduled_at": scheduled_at,
            "batch": flights["batch"],
            "flight": flights["flight"],
            "carrier": flights["carrier"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "tailnum": flights["tailnum"],
            "distance": flights["distance"],
        }
    )


def feature_table(ctx: Context, events: pd.DataFrame, label: str) -> pd.DataFrame:
    """The model's inputs for `events` (with their `label`) from the feature store, point in
    time, ordered by scheduled time. Kept in the lake too, by batch: what `esteira predict`
    and `esteira monitor --input` read."""
    table = ctx.features.training_set(events, departure)
    table = table.sort_values(["scheduled_at", "carrier", "flight"], ignore_index=True)
    table[NUMERIC] = table[NUMERIC].astype("float64")  # missing values as NaN, as models expect
    table = table[["scheduled_at", "batch", "flight", "tailnum", *FEATURES, label]]
    batches = ", ".join(f"'{b}'" for b in sorted(table["batch"].unique()))
    ctx.replace_table(TABLE, table, where=f"batch IN ({batches})", partition_by=["batch"])
    ctx.log_metrics({"rows": len(table)})
    return table


def encoder() -> ColumnTransformer:
    """Categories as ordinal codes (unknown and missing ones get their own codes), numbers
    passed through: what the gradient-boosted models of the flight projects take."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    codes = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
    )
    return ColumnTransformer(
        [("categories", codes, CATEGORICAL)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )


def is_categorical() -> list[bool]:
    """Which columns of the encoder's output are categories (for HistGradientBoosting)."""
    return [True] * len(CATEGORICAL) + [False] * len(NUMERIC)


def fit(ctx: Context, estimator: BaseEstimator, train_set: pd.DataFrame, label: str) -> Pipeline:
    """`estimator` behind the encoder, fitted on `train_set`'s features and `label`; the
    training set is logged as the run's dataset, from the flights table."""
    from sklearn.pipeline import Pipeline

    model = Pipeline([("encode", encoder()), ("model", estimator)])
    model.fit(train_set[FEATURES], train_set[label])
    ctx.log_dataset(train_set, "train_set", table="raw_flights", targets=label)
    ctx.log_params({"model": type(estimator).__name__, "train_rows": len(train_set)})
    return model


def gradient_boosted(kind: type[BaseEstimator], **params: object) -> BaseEstimator:
    """A HistGradientBoosting classifier or regressor (`kind`) over the encoder's columns,
    its categories declared, stopping early on a validation share of the training rows."""
    return kind(categorical_features=is_categorical(), early_stopping=True, **params)


def register_model(
    ctx: Context,
    model: Pipeline,
    test_set: pd.DataFrame,
    name: str,
    predict_fn: str,
    tags: dict[str, str] | None = None,
) -> dict:
    """Log `model` with its signature and register it as `name`'s challenger, linked to this
    run and its data; served, it also takes requests that carry only a departure (the
    `departure` feature service)."""
    registered = ctx.log_model(
        model,
        input_example=test_set[FEATURES].head(5),
        register_as=name,
        predict_fn=predict_fn,
        tags=tags,
        alias="challenger",
        features=departure,
    )
    return {"name": registered.name, "version": registered.version, "uri": registered.model_uri}
