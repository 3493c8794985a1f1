"""Monitoring on real flights: drift tests chosen by size, the report, and the CLI."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from esteira import load_project
from esteira.config import MonitoringSection
from esteira.ct.triggers import CTState, drift
from esteira.metadata import MonitoringRecord
from esteira.monitoring.drift import column_drift, drift_of, drift_share
from esteira.monitoring.monitor import monitor_batch, reference_profile
from esteira.monitoring.report import current_counts, render
from esteira.pipelines.runner import run_pipeline
from esteira.summaries.profile import infer_profile, profile_column

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The reference project trained on January to March, and features of later months."""
    import shutil

    from conftest import EXAMPLE

    root = tmp_path_factory.mktemp("monitoring") / "flight_delays"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    project = load_project(root)
    run_pipeline(project, "train")
    # Months land in order: each is validated against the three before it.
    year = run_pipeline(project, "train", {"end": "2013-08", "months": 8}, until="features")
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


def test_a_discrete_numeric_column_drifts_only_when_its_shares_move():
    """KS on a column of few values (a code 1 or 2, counts): the reference's quantiles tie,
    and a sample of the same data must not look drifted (it did: p = 0 for itself)."""
    rng = np.random.default_rng(0)
    codes = pd.Series(rng.choice([1, 2], 400, p=[0.53, 0.47]).astype(float))
    counts = pd.Series(rng.poisson(3, 400).astype(float))
    for reference in (codes, counts):
        same = column_drift(profile_column(reference, "x"), reference.sample(300, random_state=1))
        assert same["test"] == "ks" and not same["drifted"], same
    moved = column_drift(profile_column(codes, "x"), pd.Series(rng.choice([1.0, 2.0], 300)))
    assert not moved["drifted"]  # 50/50 against 53/47: within chance at these sizes
    flipped = column_drift(
        profile_column(codes, "x"), pd.Series(rng.choice([1.0, 2.0], 300, p=[0.2, 0.8]))
    )
    assert flipped["drifted"] and flipped["value"] < 1e-6


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

    counts = current_counts(reference, august, pd.Series(predictions))
    page = render(record, reference, counts, [record], "roc_auc")
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 3
    for text in ("temp", "wasserstein", "drifted", "roc_auc over time", "By segment", "JFK"):
        assert text in page
    assert "<script" not in page  # readable offline, nothing to run


def test_ignored_columns_are_measured_and_shown_but_not_counted():
    rng = np.random.default_rng(0)
    winter = pd.DataFrame({"month": rng.integers(1, 4, 3000), "temp": rng.normal(0, 1, 3000),
                           "wind": rng.normal(0, 1, 3000)})  # fmt: skip
    summer = pd.DataFrame({"month": rng.integers(6, 9, 3000), "temp": rng.normal(2, 1, 3000),
                           "wind": rng.normal(0, 1, 3000)})  # fmt: skip
    columns = ["month", "temp", "wind"]
    counted = drift_of(infer_profile(winter), summer, columns)
    assert drift_share(counted) == pytest.approx(2 / 3)
    found = drift_of(infer_profile(winter), summer, columns, ignore=["month"])
    assert found["month"]["drifted"] and found["month"]["counted"] is False
    assert drift_share(found) == 0.5  # temp of temp and wind

    share = drift_share(found)
    record = MonitoringRecord(model="m", version="1", batch="2013-07", rows=3000,
                              drift_share=share, drifted=found, metrics={})  # fmt: skip
    fire = drift(0.5)(CTState("m", datetime(2013, 8, 1), "1", None, "2013-06", "2013-07", record))
    assert fire and fire.reason.startswith("50% of features drifted") and "month" not in fire.reason
    reference = infer_profile(winter)
    page = render(
        record,
        reference,
        current_counts(reference, summer, pd.Series(np.zeros(3000))),
        [],
        "roc_auc",
    )
    assert "1 of 2 (50%)" in page and "drifted · not counted" in page


def test_monitoring_leaves_out_the_configured_columns(trained, monkeypatch):
    project, summer = trained
    reference = reference_profile(project, "flight_delays", "1", "train_set")
    august = summer[summer.batch == "2013-08"]
    counted, _ = monitor_batch(project, "flight_delays", "1", "2013-08", august, "delayed",
                               reference)  # fmt: skip
    monkeypatch.setattr(project.settings, "monitoring", MonitoringSection(ignore_columns=["temp"]))
    record, _ = monitor_batch(project, "flight_delays", "1", "2013-08", august, "delayed",
                              reference)  # fmt: skip
    features = [c for c, d in counted.drifted.items() if d.get("kind") != "prediction"]
    drifted = sum(counted.drifted[c]["drifted"] for c in features)
    assert counted.drift_share == pytest.approx(drifted / len(features))
    assert record.drift_share == pytest.approx((drifted - 1) / (len(features) - 1))
    assert record.drifted["temp"] == counted.drifted["temp"] | {"counted": False}
