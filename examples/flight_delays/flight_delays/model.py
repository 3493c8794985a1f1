"""Split in time, train a gradient-boosted classifier, evaluate it overall and per airport,
and register it (the pipeline's built-in `promote` step then runs the gates).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira import Context, step
from flight_delays.features import FEATURES, SEGMENT, TARGET, fit, gradient_boosted, register_model

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


@step(outputs=("train_set", "test_set"))
def split(features: pd.DataFrame, test_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest `test_fraction` of departures (by scheduled time) is the test set: the
    model is always judged on flights that come after the ones it learned from."""
    cutoff = features["scheduled_at"].quantile(1 - test_fraction)
    later = features["scheduled_at"] >= cutoff
    return features[~later].reset_index(drop=True), features[later].reset_index(drop=True)


@step(outputs="model")
def train(
    ctx: Context,
    train_set: pd.DataFrame,
    learning_rate: float = 0.1,
    max_iter: int = 200,
    max_leaf_nodes: int = 31,
    seed: int = 13,
) -> Pipeline:
    from sklearn.ensemble import HistGradientBoostingClassifier

    classifier = gradient_boosted(
        HistGradientBoostingClassifier,
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        random_state=seed,
    )
    model = fit(ctx, classifier, train_set, TARGET)
    ctx.log_params({"iterations_used": classifier.n_iter_})
    return model


def scores(y: pd.Series, p: pd.Series) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    return {
        "roc_auc": roc_auc_score(y, p),
        "pr_auc": average_precision_score(y, p),
        "log_loss": log_loss(y, p, labels=[0, 1]),
        "brier": brier_score_loss(y, p),
    }


@step(outputs="evaluation")
def evaluate(ctx: Context, model: Pipeline, test_set: pd.DataFrame) -> dict:
    """Test metrics overall and per origin airport (a segment must not hide a failure)."""
    scored = test_set.assign(p=model.predict_proba(test_set[FEATURES])[:, 1])
    metrics = scores(scored[TARGET], scored["p"])
    for segment, rows in scored.groupby(SEGMENT):
        if rows[TARGET].nunique() == 2:
            metrics |= {f"{k}.{segment}": v for k, v in scores(rows[TARGET], rows["p"]).items()}
    ctx.log_metrics(
        metrics | {"test_rows": len(test_set), "test_delay_rate": scored[TARGET].mean()}
    )
    ctx.log_dataset(test_set, "test_set", table="raw_flights", targets=TARGET, context="evaluation")
    return metrics


@step(outputs="registered")
def register(
    ctx: Context,
    model: Pipeline,
    evaluation: dict,
    test_set: pd.DataFrame,
    model_name: str = "flight_delays",
) -> dict:
    tags = {"roc_auc": f"{evaluation['roc_auc']:.4f}"}
    return register_model(ctx, model, test_set, model_name, "predict_proba", tags)
