"""Binary, multiclass and regression end to end with no [gates] and no [ct] metric: the task
is inferred and recorded, gates and monitoring use its metrics and none of another's, and a
metric that does not fit the task is refused with the ones that do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_cli import esteira

from esteira import load_project
from esteira.ct.triggers import CTState, performance
from esteira.errors import ConfigError, StepFailed
from esteira.metadata import MonitoringRecord
from esteira.metrics import DEFAULT_METRIC, TASK_TAG, MetricError, Scores, score, why_undefined
from esteira.monitoring.monitor import monitor_batch, reference_profile
from esteira.monitoring.report import current_counts, render
from esteira.pipelines.runner import run_pipeline
from esteira.registry import CHAMPION, Registry

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from esteira import pipeline, step
from esteira.steps import promote

TASK = "{task}"


def make(seed, n, noise=0.5):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({{"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                        "seg": rng.choice(["A", "B"], n)}})
    signal = df.x1 + 0.5 * df.x2 + rng.normal(scale=noise, size=n)
    if TASK == "regression":
        df["label"] = 10 * signal + 3
    elif TASK == "multiclass":  # text classes: their order comes from the model
        df["label"] = np.array(["low", "mid", "high"])[np.digitize(signal, [-0.5, 0.5])]
    else:
        df["label"] = (signal > 0).astype(int)
    return df


@step(outputs=("train_set", "test_set"))
def data(seed: int = 0, noise: float = 0.5):
    return make(seed, 600, noise), make(1000, 400)


@step(outputs="model")
def train(train_set):
    model = (HistGradientBoostingRegressor if TASK == "regression"
             else HistGradientBoostingClassifier)(max_iter=30)
    return model.fit(train_set[["x1", "x2"]], train_set.label)


@step(outputs="registered")
def register(ctx, model, test_set):
    predict_fn = "predict" if TASK == "regression" else "predict_proba"
    m = ctx.log_model(model, test_set[["x1", "x2"]].head(3), register_as="toy",
                      predict_fn=predict_fn, alias="challenger")
    return {{"name": m.name, "version": m.version}}


flow = pipeline("flow", [data, train, register, promote])
"""

OWN = {  # in the monitoring record
    "binary": {"roc_auc", "pr_auc", "precision", "recall", "calibration_gap"},
    "multiclass": {"log_loss", "macro_f1", "accuracy", "recall_per_class", "confusion_matrix"},
    "regression": {"rmse", "mae", "r2", "bias", "residual_quantiles", "residual_histogram"},
}
FOREIGN = {
    "binary": OWN["multiclass"] - {"log_loss", "accuracy"} | OWN["regression"],
    "multiclass": OWN["binary"] | OWN["regression"],
    "regression": OWN["binary"] | OWN["multiclass"],
}
SHOWN = {  # in the report
    "binary": ["roc_auc", "precision", "recall", "mean prediction − rate"],
    "multiclass": ["log_loss", "macro_f1", "accuracy", "recall", "true ↓ predicted →"],
    "regression": ["rmse", "mae", "r2", "bias", "Residuals", "p95"],
}
NOT_SHOWN = {
    "binary": ["rmse", "mae", "bias", "Residuals", "macro_f1", "predicted →"],
    "multiclass": ["roc_auc", "precision", "mean prediction", "rmse", "Residuals"],
    "regression": ["roc_auc", "precision", "recall", "mean prediction", "log_loss", "accuracy",
                   "macro_f1", "predicted →"],
}  # fmt: skip


def project_for(write_project, task: str, toml: str = ""):
    return load_project(write_project(PIPELINE.format(task=task), toml=toml, name=task))


def batch(task: str, seed: int = 7, n: int = 500) -> pd.DataFrame:
    """New rows for monitoring, made by the project's own generator."""
    namespace: dict = {}
    exec(PIPELINE.format(task=task).split("@step")[0], namespace)
    return namespace["make"](seed, n)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_each_task_gates_monitors_and_reports_on_its_own_metrics(write_project, task):
    project = project_for(write_project, task)  # no [gates], no [ct], no [model] task

    decision = run_pipeline(project, "flow").output("decision")
    assert decision["passed"], decision
    assert (decision["task"], decision["metric"]) == (task, DEFAULT_METRIC[task])
    assert DEFAULT_METRIC[task] in decision["metrics"]
    version = Registry(project).by_alias("toy", CHAMPION)
    assert version.version == "1" and version.tags[TASK_TAG] == task  # inferred, recorded

    reference = reference_profile(project, "toy", "1", "train_set")
    data = batch(task)
    record, predictions = monitor_batch(project, "toy", "1", "b1", data, "label", reference,
                                        segment="seg")  # fmt: skip
    found = record.metrics
    assert found["task"] == task and found["rows"] == len(data)
    assert OWN[task] <= set(found), sorted(found)
    assert not FOREIGN[task] & set(found), sorted(FOREIGN[task] & set(found))
    key = DEFAULT_METRIC[task]
    assert set(found["segments"]) == {"A", "B"} and key in found["segments"]["A"]
    assert not FOREIGN[task] & set(found["segments"]["A"])
    assert record.drifted["prediction"]["kind"] == "prediction"

    if task == "binary":
        assert found["roc_auc"] > 0.85 and abs(found["calibration_gap"]) < 0.1
    elif task == "multiclass":
        assert found["accuracy"] > 0.6 and found["log_loss"] < 0.9
        assert found["confusion_matrix"]["classes"] == ["high", "low", "mid"]  # the model's order
        assert sum(map(sum, found["confusion_matrix"]["counts"])) == len(data)
        assert set(predictions) <= {"high", "low", "mid"}  # drift of the predicted class
        assert record.drifted["prediction"]["test"] == "chi_square"
    else:
        assert found["r2"] > 0.7 and abs(found["bias"]) < 1.5 and found["mae"] < found["rmse"]
        quantiles = found["residual_quantiles"]
        assert quantiles["p5"] < quantiles["p50"] < quantiles["p95"]
        assert sum(found["residual_histogram"]["counts"]) == len(data)

    page = render(
        record, reference, current_counts(reference, data, pd.Series(predictions)), [record], ""
    )
    assert [text for text in SHOWN[task] if text not in page] == []
    assert [text for text in NOT_SHOWN[task] if text in page] == []


def test_a_worse_regressor_is_kept_out_on_rmse(write_project):
    project = project_for(write_project, "regression")
    run_pipeline(project, "flow")
    worse = run_pipeline(project, "flow", {"seed": 1, "noise": 3.0}).output("decision")
    (versus,) = [c for c in worse["checks"] if c["name"] == "versus_champion"]
    assert not versus["passed"] and versus["reason"].startswith("rmse ")
    assert versus["figures"]["challenger"] > versus["figures"]["champion"]  # lower is better

    listed = esteira("models", "toy", "-p", str(project.root))
    assert listed.returncode == 0, listed.stderr
    assert "regression" in listed.stdout and "failed rmse" in listed.stdout
    assert "passed rmse" in listed.stdout and "roc_auc" not in listed.stdout


def test_a_misfit_metric_is_refused_at_load_naming_those_that_fit(write_project):
    toml = '[model]\ntask = "regression"\n[gates]\nmetric = "roc_auc"\n'
    with pytest.raises(MetricError) as refused:
        project_for(write_project, "regression", toml)
    message = str(refused.value)
    assert "[gates] metric = 'roc_auc' does not fit a regression model" in message
    assert "Metrics for regression: rmse, mae, r2, bias" in message
    assert "the nearest is 'r2'" in message

    toml = '[model]\ntask = "multiclass"\n[gates]\nthresholds = { f1 = 0.5 }\n'
    with pytest.raises(MetricError, match=r"thresholds.f1 = 'f1' does not fit a multiclass"):
        project_for(write_project, "multiclass", toml)
    toml = '[model]\ntask = "regression"\n[ct]\nmetric = "rmsle"\n'
    with pytest.raises(MetricError, match=r"'rmsle' is not a metric .* nearest is 'rmse'"):
        project_for(write_project, "regression", toml)
    with pytest.raises(MetricError, match="'rsme' is not a metric esteira knows; did you mean"):
        project_for(write_project, "regression", '[gates]\nmetric = "rsme"\n')
    toml = '[gates]\nmetric = "rmse"\n[ct]\nmetric = "roc_auc"\n'
    with pytest.raises(MetricError, match="no task fits all of these metrics"):
        project_for(write_project, "binary", toml)


def test_an_inferred_task_refuses_a_misfit_metric_at_the_first_gate(write_project):
    project = project_for(write_project, "regression", '[gates]\nmetric = "roc_auc"\n')
    with pytest.raises(StepFailed) as failed:
        run_pipeline(project, "flow")
    assert failed.value.step == "promote" and isinstance(failed.value.error, MetricError)
    assert "does not fit a regression model" in str(failed.value.error)


def test_a_configured_task_is_recorded_and_must_match_the_model(write_project):
    project = project_for(write_project, "multiclass", '[model]\ntask = "multiclass"\n')
    run_pipeline(project, "flow", until="register")
    assert Registry(project).version("toy", "1").tags[TASK_TAG] == "multiclass"

    project = project_for(write_project, "regression", '[model]\ntask = "binary"\n')
    with pytest.raises(StepFailed) as failed:
        run_pipeline(project, "flow", until="register")
    assert isinstance(failed.value.error, ConfigError)
    assert "task is 'binary' but the HistGradientBoostingRegressor" in str(failed.value.error)


def test_scores_follow_the_task():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    multi = Scores.of("multiclass", probabilities, ["b", "c", "a"])
    assert multi.predicted().tolist() == ["b", "a", "c"]
    found = score(["accuracy", "log_loss", "macro_f1"], ["b", "a", "a"], multi)
    assert found["accuracy"] == pytest.approx(2 / 3)
    assert found["log_loss"] == pytest.approx(-np.log([0.7, 0.6, 0.3]).mean())

    binary = Scores.of("binary", np.array([[0.9, 0.1], [0.2, 0.8]]), ["no", "yes"])
    assert binary.values.tolist() == [0.1, 0.8]  # the positive class is the model's last
    assert score(["recall", "precision"], ["yes", "yes"], binary, threshold=0.5) == {
        "recall": 0.5, "precision": 1.0,
    }  # fmt: skip
    assert "roc_auc" not in score(["roc_auc"], ["yes", "yes"], binary)  # one class: undefined

    with pytest.raises(MetricError, match="does not fit a regression model"):
        score(["roc_auc"], [1.0, 2.0], Scores.of("regression", [1.0, 2.5]))


def test_the_performance_trigger_watches_the_records_task_metric_in_its_direction():
    def state(**metrics):
        record = MonitoringRecord(model="m", version="2", batch="b9", rows=10, drift_share=0.0,
                                  drifted={}, metrics=metrics)  # fmt: skip
        return CTState("m", pd.Timestamp("2024-01-01").to_pydatetime(), "2", None, None, None,
                       record)  # fmt: skip

    fire = performance("", 10.0)(state(task="regression", rmse=12.5))
    assert fire and "rmse 12.5000 of v2 on batch b9 is above 10.0" in fire.reason
    assert performance("", 10.0)(state(task="regression", rmse=8.0)) is None
    assert performance("bias", 1.0)(state(task="regression", bias=-1.5)) is not None
    assert performance("", 0.7)(state(task="multiclass", log_loss=0.9)) is not None
    with pytest.raises(MetricError, match="not a metric esteira knows"):
        performance("auc", 0.7)


def test_a_metric_that_cannot_be_computed_says_why(write_project):
    """A multiclass model logged with predict (classes, no probabilities) has no log loss:
    the gate says what to change, and the scores explain an unseen class or a single one."""
    code = PIPELINE.format(task="multiclass").replace(
        'predict_fn = "predict" if TASK == "regression" else "predict_proba"',
        'predict_fn = "predict"',
    )
    project = load_project(write_project(code))
    decision = run_pipeline(project, "flow").output("decision")
    checks = {c["name"]: c for c in decision["checks"]}
    assert not decision["passed"] and checks["compatibility"]["passed"], decision
    assert 'log it with predict_fn="predict_proba"' in checks["versus_champion"]["reason"]

    probabilities = Scores.of("multiclass", np.array([[0.6, 0.4], [0.3, 0.7]]), ["a", "b"])
    assert "never learned (c)" in why_undefined("log_loss", ["a", "c"], probabilities)
    single = Scores.of("binary", np.array([0.2, 0.9]), [0, 1])
    assert why_undefined("roc_auc", [1, 1], single) == "the test data has a single class"
