"""Monitoring on real flights: drift tests chosen by size, the report, and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from esteira import load_project
from esteira.monitoring.monitor import column_drift, drift_of, monitor_batch, reference_profile
from esteira.monitoring.report import render
from esteira.validation.profile import infer_profile, profile_column

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The reference project trained on January to March, and features of later months."""
    import shutil

    from conftest import EXAMPLE

    root = tmp_path_factory.mktemp("monitoring") / "flight_delays"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    project = load_project(root)
    project.run("train")
    # Months land in order: each is validated against the three before it.
    year = project.run("train", {"end": "2013-08", "months": 8}, until="features")
    features = year.output("features")
    return project, features[features.batch >= "2013-06"]


def test_the_test_follows_the_reference_size():
    rng = np.random.default_rng(0)
    big, small = pd.Series(rng.normal(size=5000)), pd.Series(rng.normal(size=300))
    assert column_drift(profile_column(big, "x"), pd.Series(rng.normal(size=400)))["test"] == (
        "wasserstein"
    )
    found = column_drift(profile_column(small, "x"), pd.Series(rng.normal(0.5, 1, 400)))
    assert found["test"] == "ks" and found["drifted"] and found["value"] < 0.05
    cats = pd.Series(rng.choice(["a", "b"], 300))
    assert column_drift(profile_column(cats, "k"), cats.sample(200, random_state=1))["test"] == (
        "chi_square"
    )


def test_summer_drifts_from_winter_and_two_halves_of_a_month_do_not(trained):
    project, summer = trained
    from flight_delays.features import FEATURES  # importable: the project is loaded

    winter = reference_profile(project, "flight_delays", "1", "train_set")
    shifted = drift_of(winter, summer, FEATURES)
    assert shifted["temp"]["drifted"] and shifted["temp"]["test"] == "wasserstein"
    assert shifted["temp"]["value"] > 1  # several standard deviations
    assert not shifted["origin"]["drifted"]  # the airports are the same

    july = summer[summer.batch == "2013-07"].sample(frac=1.0, random_state=0)
    first, second = july.iloc[: len(july) // 2], july.iloc[len(july) // 2 :]
    halves = drift_of(infer_profile(first), second, FEATURES)
    assert not any(d["drifted"] for d in halves.values()), {
        c: d["value"] for c, d in halves.items() if d["drifted"]
    }


def test_monitor_batch_records_drift_performance_and_the_report_shows_it(trained, tmp_path):
    project, summer = trained
    reference = reference_profile(project, "flight_delays", "1", "train_set")
    august = summer[summer.batch == "2013-08"]
    record, predictions = monitor_batch(project, "flight_delays", "1", "2013-08", august,
                                        "delayed", reference, segment="origin")  # fmt: skip
    assert record.drift_share > 0.3 and record.drifted["prediction"]["kind"] == "prediction"
    assert 0.6 < record.metrics["roc_auc"] < 0.8 and set(record.metrics["segments"]) == {
        "EWR", "JFK", "LGA",
    }  # fmt: skip
    assert abs(record.metrics["calibration_gap"]) < 0.1
    latest = project.metadata.latest_monitoring("flight_delays")
    assert latest.id == record.id  # what the drift and performance triggers read

    page = render(record, reference, august, pd.Series(predictions), [record], "roc_auc")
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 3
    for text in ("temp", "wasserstein", "drifted", "roc_auc over time", "By segment", "JFK"):
        assert text in page
    assert "<script" not in page  # readable offline, nothing to run
