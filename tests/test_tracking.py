"""What lands in MLflow: the run, params, metrics, datasets and the registered model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from esteira import load_project
from esteira.errors import StepFailed, TrackingError
from esteira.pipelines.runner import run_pipeline

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from esteira import pipeline, step


@step
def data(ctx):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    df["label"] = (df.a + 0.3 * rng.normal(size=400) > 0).astype(int)
    ctx.replace_table("training", df)
    return ctx.read_table("training")


@step(outputs="model")
def train(ctx, data, max_iter: int = 20):
    model = HistGradientBoostingClassifier(max_iter=max_iter).fit(data[["a", "b"]], data.label)
    ctx.log_dataset(data, "training", table="training", targets="label")
    ctx.log_params({"train_rows": len(data)})
    ctx.log_metrics({"train_accuracy": model.score(data[["a", "b"]], data.label)})
    return model


@step
def register(ctx, model, data):
    example = data[["a", "b"]].head(3)
    m = ctx.log_model(model, example, register_as="toy", predict_fn="predict_proba")
    return {"version": m.version}


flow = pipeline("flow", [data, train, register])
"""


def test_mlflow_holds_run_params_metrics_dataset_and_registered_model(write_project):
    root = write_project(PIPELINE)
    project = load_project(root)
    result = run_pipeline(project, "flow")
    assert result.output("register") == {"version": "1"}

    client = MlflowClient(project.settings.tracking_uri, project.settings.registry_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["max_iter"] == "20" and run.data.params["train_rows"] == "400"
    assert run.data.metrics["train_accuracy"] > 0.8
    tags = run.data.tags
    assert tags["esteira.pipeline_run_id"] == result.run_id
    assert tags["esteira.pipeline"] == "flow" and tags["esteira.project"] == "proj"
    assert tags["esteira.data.training.version"] == "0"

    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "training" and dataset_input.dataset.digest
    assert "training" in dataset_input.dataset.source
    assert dataset_input.tags[0].value == "training"

    version = client.get_model_version("toy", "1")
    record = project.metadata.run(result.run_id)
    assert version.tags["esteira.pipeline_run_id"] == result.run_id
    assert version.tags["esteira.code_version"] == record.code_version
    assert version.tags["esteira.data.training.version"] == "0"
    assert version.tags["esteira.step"] == "register"
    assert version.run_id == result.mlflow_run_id

    project.tracker.activate()
    loaded = mlflow.pyfunc.load_model("models:/toy/1")
    example = pd.DataFrame({"a": [2.0, -2.0], "b": [0.0, 0.0]})
    probabilities = np.asarray(loaded.predict(example))
    assert probabilities.shape == (2, 2) and probabilities[0, 1] > probabilities[1, 1]
    requirements = mlflow.pyfunc.get_model_dependencies("models:/toy/1")
    text = Path(requirements).read_text()
    assert "scikit-learn==" in text and "skops==" in text

    (model_record,) = [m for s in record.steps for m in s.models]
    assert (model_record.name, model_record.version) == ("toy", "1")


def test_fully_cached_rerun_makes_no_mlflow_run(write_project):
    root = write_project(PIPELINE)
    run_pipeline(load_project(root), "flow")
    again = run_pipeline(load_project(root), "flow")
    assert set(again.step_status.values()) == {"cached"}
    assert again.mlflow_run_id is None


UNTRUSTED = """
from sklearn.base import BaseEstimator, ClassifierMixin

from esteira import pipeline, step


class Majority(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.value_ = int(y.mean() > 0.5)
        return self

    def predict(self, X):
        return [self.value_] * len(X)


@step(outputs="model")
def train():
    import pandas as pd

    return Majority().fit(pd.DataFrame({"a": [1, 2]}), pd.Series([1, 1]))


flow = pipeline("flow", [train])
"""


def test_a_model_with_untrusted_types_is_refused_with_the_fix(write_project):
    root = write_project(UNTRUSTED)
    with pytest.raises(StepFailed) as failure:
        run_pipeline(load_project(root), "flow")
    assert isinstance(failure.value.error, TrackingError)
    assert "pipelines.Majority" in str(failure.value.error)
    assert "[model] trusted_types" in str(failure.value.error)

    write_project(UNTRUSTED, toml='[model]\ntrusted_types = ["pipelines.Majority"]\n')
    result = run_pipeline(load_project(root), "flow")
    assert result.output("model").predict([[0]]) == [1]


def _frames() -> dict[str, pd.DataFrame]:
    """Columns of every kind MLflow infers, with and without missing values."""
    n = 300
    rng = np.random.default_rng(3)
    numbers = rng.normal(size=n)
    numbers[::7] = np.nan
    words = pd.Series(rng.choice(["EWR", "JFK", "LGA"], n))
    times = pd.Series(pd.date_range("2013-01-01", periods=n, freq="h", tz="UTC"))
    times[5] = pd.NaT
    text_gaps = words.astype(object).where(np.arange(n) % 9 != 0, None)
    mixed = words.astype(object)
    mixed[3] = 4
    typed = {
        "f": numbers, "i": np.arange(n), "i32": np.arange(n, dtype="int32"),
        "f32": numbers.astype("float32"), "b": np.arange(n) % 2 == 0,
        "nullable": pd.array([1, None] * (n // 2), dtype="Int64"), "t": times,
        "naive": times.dt.tz_localize(None),
    }  # fmt: skip
    text = {
        "str": words.astype("str"), "str_gaps": words.astype("str").where(numbers > 0),
        "object": words.astype(object), "object_gaps": text_gaps,
        "np_str": pd.Series(np.array(words, dtype="U3"), dtype=object),
        "category": words.astype("category"),
    }  # fmt: skip
    objects = {
        "mixed": mixed, "nothing": pd.Series([None] * n, dtype=object),
        "lists": pd.Series([[1.0, 2.0]] * n), "dicts": pd.Series([{"k": "v"}] * n),
        "bytes": pd.Series([b"x"] * n),
        "nat_in_text": words.astype(object).where(np.arange(n) > 0, np.datetime64("NaT")),
    }  # fmt: skip
    return {
        "typed": pd.DataFrame(typed),
        "text": pd.DataFrame(text),
        "objects": pd.DataFrame(objects),
        "timedelta": pd.DataFrame({"d": pd.to_timedelta(np.arange(n), unit="s")}),
        "empty": pd.DataFrame({"a": pd.Series([], dtype=float), "s": pd.Series([], dtype=str)}),
        "duplicated": pd.DataFrame([[1, "a"]] * 4, columns=["x", "x"]),
    }


@pytest.mark.parametrize("kind", list(_frames()))
def test_a_logged_dataset_has_the_schema_and_digest_mlflow_infers(kind):
    """esteira computes a logged DataFrame's schema and digest a column at a time; they
    are MLflow's own, whatever the columns hold."""
    import warnings

    from mlflow.data.digest_utils import compute_pandas_digest
    from mlflow.types.utils import _infer_schema

    from esteira.datasets import dataset_digest, dataset_schema

    df = _frames()[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = _infer_schema(df).to_dict()
        except Exception:  # PandasDataset.schema leaves it out
            expected = None
        ours = dataset_schema(df)
    assert (ours.to_dict() if ours is not None else None) == expected
    assert _outcome(dataset_digest, df) == _outcome(compute_pandas_digest, df)


def _outcome(fn, df):
    """What `fn(df)` returns, or the kind of error it raises (MLflow's digest of an empty
    frame with a string column is one)."""
    try:
        return fn(df)
    except Exception as e:
        return type(e)
