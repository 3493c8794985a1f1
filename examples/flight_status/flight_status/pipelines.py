"""Train a gradient-boosted classifier of four outcomes of a departure on the reference
project's flights: its ingest, feature store and time split are reused as they are; the
label, the model and its evaluation are this project's own."""

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

TARGET = "status"
LATE_MINUTES, VERY_LATE_MINUTES = 15, 60


def status(dep_delay: pd.Series) -> pd.Series:
    """cancelled (no departure), on_time (up to 15 minutes late), late (up to an hour),
    very_late."""
    import numpy as np
    import pandas as pd

    labels = np.select(
        [dep_delay.isna(), dep_delay <= LATE_MINUTES, dep_delay <= VERY_LATE_MINUTES],
        ["cancelled", "on_time", "late"],
        "very_late",
    )
    return pd.Series(labels, index=dep_delay.index)


@step
def features(ctx: Context, flights: pd.DataFrame, materialize: dict) -> pd.DataFrame:
    """One row per scheduled departure, cancelled ones included, labelled with its status."""
    events = departure_events(flights)
    events[TARGET] = status(flights["dep_delay"])
    table = feature_table(ctx, events, TARGET)
    ctx.log_metrics(
        {f"share.{k}": v for k, v in table[TARGET].value_counts(normalize=True).items()}
    )
    return table


@step(outputs="model")
def train(
    ctx: Context,
    train_set: pd.DataFrame,
    learning_rate: float = 0.1,
    max_iter: int = 200,
    seed: int = 13,
) -> Pipeline:
    from sklearn.ensemble import HistGradientBoostingClassifier

    classifier = gradient_boosted(
        HistGradientBoostingClassifier,
        learning_rate=learning_rate,
        max_iter=max_iter,
        random_state=seed,
    )
    return fit(ctx, classifier, train_set, TARGET)


def scores(y: pd.Series, proba: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    predicted = proba.to_numpy().argmax(axis=1)
    labels = [classes[i] for i in predicted]
    return {
        "log_loss": log_loss(y, proba, labels=classes),
        "macro_f1": f1_score(y, labels, average="macro", labels=classes, zero_division=0),
        "accuracy": accuracy_score(y, labels),
    }


@step(outputs="evaluation")
def evaluate(ctx: Context, model: Pipeline, test_set: pd.DataFrame) -> dict:
    """Test metrics overall and per origin airport."""
    import pandas as pd

    classes = [str(c) for c in model.classes_]
    proba = pd.DataFrame(model.predict_proba(test_set[FEATURES]), columns=classes)
    y = test_set[TARGET].reset_index(drop=True)
    metrics = scores(y, proba, classes)
    for segment, index in test_set.groupby(SEGMENT).indices.items():
        found = scores(y.iloc[index], proba.iloc[index], classes)
        metrics |= {f"{k}.{segment}": v for k, v in found.items()}
    ctx.log_metrics(metrics | {"test_rows": len(test_set)})
    return metrics


@step(outputs="registered")
def register(ctx: Context, model: Pipeline, evaluation: dict, test_set: pd.DataFrame) -> dict:
    """Register the model as challenger; served, it answers each class's probability and
    also takes requests that carry only a departure (the `departure` feature service)."""
    return register_model(ctx, model, test_set, "flight_status", "predict_proba")


train_pipeline = pipeline(
    "train",
    [ingest, flights, materialize, features, split, train, evaluate, register, promote],
    params={"end": "2013-03", "months": 3},
    description="Predict whether departures from EWR, JFK and LGA leave on time, late, very "
    "late, or are cancelled.",
)
