"""Train a gradient-boosted regressor of the arrival delay on the reference project's
departures: its ingest, feature store and time split are reused as they are; the label, the
model and its evaluation are this project's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flight_delays.features import (
    FEATURES,
    SEGMENT,
    departure_events,
    feature_table,
    fit,
    gradient_boosted,
    materialize,
    register_model,
)
from flight_delays.ingest import flights, ingest
from flight_delays.model import split

from esteira import Context, pipeline, step
from esteira.steps import promote

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

TARGET = "arr_delay"


@step
def features(ctx: Context, flights: pd.DataFrame, materialize: dict) -> pd.DataFrame:
    """One row per flight that arrived (cancelled and diverted flights have no arrival
    delay), labelled with its arrival delay in minutes (negative: early)."""
    arrived = flights[flights[TARGET].notna()]
    events = departure_events(arrived)
    events[TARGET] = arrived[TARGET].astype("float64")
    table = feature_table(ctx, events, TARGET)
    ctx.log_metrics({"mean_arrival_delay": table[TARGET].mean()})
    return table


@step(outputs="model")
def train(
    ctx: Context,
    train_set: pd.DataFrame,
    learning_rate: float = 0.1,
    max_iter: int = 200,
    seed: int = 13,
) -> Pipeline:
    from sklearn.ensemble import HistGradientBoostingRegressor

    regressor = gradient_boosted(
        HistGradientBoostingRegressor,
        learning_rate=learning_rate,
        max_iter=max_iter,
        random_state=seed,
    )
    return fit(ctx, regressor, train_set, TARGET)


def scores(y: pd.Series, p: pd.Series) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "rmse": root_mean_squared_error(y, p),
        "mae": mean_absolute_error(y, p),
        "r2": r2_score(y, p),
        "bias": float((y - p).mean()),  # mean residual: positive when it predicts too little
    }


@step(outputs="evaluation")
def evaluate(ctx: Context, model: Pipeline, test_set: pd.DataFrame) -> dict:
    """Test metrics overall and per origin airport."""
    scored = test_set.assign(p=model.predict(test_set[FEATURES]))
    metrics = scores(scored[TARGET], scored["p"])
    for segment, rows in scored.groupby(SEGMENT):
        metrics |= {f"{k}.{segment}": v for k, v in scores(rows[TARGET], rows["p"]).items()}
    ctx.log_metrics(metrics | {"test_rows": len(test_set)})
    return metrics


@step(outputs="registered")
def register(ctx: Context, model: Pipeline, evaluation: dict, test_set: pd.DataFrame) -> dict:
    """Register the model as challenger; served, it also takes requests that carry only a
    departure (the `departure` feature service)."""
    return register_model(ctx, model, test_set, "arrival_delay", "predict")


train_pipeline = pipeline(
    "train",
    [ingest, flights, materialize, features, split, train, evaluate, register, promote],
    params={"end": "2013-03", "months": 3},
    description="Predict the arrival delay in minutes of departures from EWR, JFK and LGA.",
)
