"""Regression and multiclass end to end on the real flights, beside the binary reference
project: the same ingest, feature store and batches, no [gates] section and no [ct] metric.
Each task trains, passes its default gates, is promoted, served (departure only), scores a
lake table, is monitored with its own metrics and none of another task's, and replays two
policies."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from test_serving import Server

from esteira import load_project
from esteira.pipelines.runner import run_pipeline
from esteira.registry import Registry

pytestmark = pytest.mark.integration

TASKS = {
    # project: task, its default metric, metrics of other tasks that must not show
    "arrival_delay": ("regression", "rmse", ["roc_auc", "precision", "log_loss"]),
    "flight_status": ("multiclass", "log_loss", ["roc_auc", "rmse", "calibration"]),
}
DEPARTURE = {
    "scheduled_at": "2013-01-31T18:30:00-05:00",
    "carrier": "UA",
    "origin": "EWR",
    "dest": "ORD",
    "tailnum": "N14228",
    "distance": 719,
}


@pytest.fixture(params=sorted(TASKS))
def task_project(request, tmp_path) -> Path:
    """A private copy of a task's project and of the flight project whose code it imports."""
    for name in ("flight_delays", request.param):
        shutil.copytree(
            REPO / "examples" / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns(".esteira", "__pycache__"),
        )
    return tmp_path / request.param


def test_each_task_from_training_to_monitoring(task_project):
    from esteira.monitoring.job import run_monitor
    from esteira.serving.batch import predict_table

    name = task_project.name
    task, metric, foreign = TASKS[name]
    project = load_project(task_project)
    result = run_pipeline(project, "train", {"end": "2013-01", "months": 1})
    assert result.status == "completed"
    decision = result.output("decision")
    assert decision["passed"], decision
    registry = Registry(project)
    champion = registry.by_alias(name, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.tags["esteira.task"] == task
    versus = next(c for c in decision["checks"] if c["name"] == "versus_champion")
    assert "no champion yet" in versus["reason"]

    # served: a request that carries only the departure, features from the online store
    server = Server(task_project, "--model", name)
    try:
        server.wait_up()
        server.wait_ready()
        answer = httpx.post(f"{server.url}/predict", json={"records": [DEPARTURE]}, timeout=30)
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["predictions"]
        if task == "regression":
            assert isinstance(prediction, float) and -60 < prediction < 240
        else:  # one probability per class
            assert len(prediction) == 4 and sum(prediction) == pytest.approx(1.0)
    finally:
        server.stop()

    scored = predict_table(project, name, "flight_features", "flight_predictions")
    assert scored.rows == len(result.output("features"))

    monitored = run_monitor(project, name, table="flight_features", batch="2013-01")
    metrics = monitored.record.metrics
    assert metric in metrics and not set(foreign) & set(metrics), metrics
    page = monitored.report.read_text()
    assert metric in page
    assert not [m for m in foreign if m in page], [m for m in foreign if m in page]


def test_each_task_replays_two_policies(task_project):
    from esteira.ct.replay import replay

    name = task_project.name
    _, metric, _ = TASKS[name]
    never, monthly = replay(task_project, ["2013-04", "2013-05"], ["never", "schedule"])
    assert never.metric == metric and never.retrains == 0
    assert [r.champion for r in never.rows] == ["1", "1"]
    assert all(r.metric is not None for r in never.rows + monthly.rows)
    assert monthly.retrains == 2
    assert monthly.rows[0].metric == pytest.approx(never.rows[0].metric)  # same start
