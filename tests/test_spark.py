"""The Spark engine (pyspark in local mode) against the embedded one on the real flights:
the same scored rows, columns and lineage; the same tallies, drift verdicts and metrics.
Lake tables round-trip through Spark without Delta jars, and a failed job adds nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import REPO

from esteira import load_project
from esteira.errors import LakeError
from esteira.lake import Lake
from esteira.pipelines.runner import run_pipeline
from esteira.summaries.profile import infer_profile
from esteira.summaries.tally import tally_columns

pyspark = pytest.importorskip("pyspark")

from esteira.spark.session import spark_session  # noqa: E402
from esteira.spark.tables import append_table, read_table  # noqa: E402

pytestmark = pytest.mark.integration
LINEAGE = ["model", "model_version", "input_table", "input_version", "prediction_run"]


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    session = spark_session(2)
    yield session
    session.stop()


def _trained(root: Path, name: str) -> object:
    """A private copy of `name` (and of the flight project it may import), trained on
    January 2013."""
    for example in {"flight_delays", name}:
        shutil.copytree(REPO / "examples" / example, root / example,
                        ignore=shutil.ignore_patterns(".esteira", "__pycache__"))  # fmt: skip
    project = load_project(root / name)
    assert run_pipeline(project, "train", {"end": "2013-01", "months": 1}).status == "completed"
    return project


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> object:
    return _trained(tmp_path_factory.mktemp("spark"), "flight_delays")


def test_a_table_round_trips_through_spark(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    rows = pd.DataFrame({
        "n": [1, 2, 3], "label": ["a", None, "c"], "batch": ["2013-01", "2013-01", "2013-02"],
        "at": pd.to_datetime(["2013-01-01", "2013-01-02", "2013-02-01"], utc=True),
    })  # fmt: skip
    lake.append("source", rows, partition_by=["batch"])
    frame, version = read_table(spark, lake, "source")
    assert version == 0 and frame.columns == ["n", "label", "batch", "at"]
    # The partition column comes back from the folders with the table's type.
    assert dict(frame.dtypes)["batch"] == "string" and frame.count() == 3

    assert append_table(lake, "copy", frame) == (0, 3)
    assert append_table(lake, "copy", frame.where("n > 1")) == (1, 2)
    copied, _ = lake.read("copy")
    assert sorted(copied.n) == [1, 2, 2, 3, 3]
    assert copied.dtypes.to_dict() == lake.read("source")[0][copied.columns].dtypes.to_dict()

    with pytest.raises(LakeError, match=r"n \(string instead of int64\)"):
        append_table(
            lake, "copy", frame.selectExpr("cast(n as string) as n", "label", "batch", "at")
        )
    assert lake.version("copy") == 1


def test_a_failed_spark_job_adds_nothing(spark, tmp_path):
    from pyspark.sql import functions as F

    lake = Lake(tmp_path / "lake")
    lake.append("numbers", pd.DataFrame({"n": range(100)}))
    frame, _ = read_table(spark, lake, "numbers")
    append_table(lake, "out", frame)

    @F.udf("double")
    def breaks_on_fifty(n):
        if n == 50:
            raise ValueError("row fifty is bad")
        return float(n)

    with pytest.raises(LakeError, match="ValueError: row fifty is bad"):
        append_table(lake, "out", frame.select(breaks_on_fifty("n").cast("long").alias("n")))
    assert lake.version("out") == 0 and len(lake.read("out")[0]) == 100


def test_spark_counts_the_tallies_the_embedded_engine_streams(spark):
    from esteira.spark.monitoring import spark_tallies

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({
        "x": rng.normal(10, 2, 5000), "k": rng.integers(0, 5, 5000).astype(float),
        "c": rng.choice(["a", "b", "c"], 5000),
    })  # fmt: skip
    current = pd.DataFrame({
        "x": [*rng.normal(11, 3, 2996), np.nan, None, 100.0, -100.0],
        "k": [*rng.integers(0, 7, 2999).astype(float), np.nan],  # values on the grid
        "c": [*rng.choice(["a", "b", "d"], 2998), None, "c"],  # "d": not in the reference
    })  # fmt: skip
    profile = infer_profile(reference)
    table = pa.Table.from_pandas(current, preserve_index=False)
    streamed = tally_columns(profile.columns, table.to_batches(max_chunksize=700), ["x", "k", "c"])
    counted = spark_tallies(spark.createDataFrame(current), profile.columns)
    for column, ours in counted.items():
        theirs = streamed[column]
        assert (ours.rows, ours.nulls) == (theirs.rows, theirs.nulls), column
        assert ours.counts.tolist() == theirs.counts.tolist(), column
        assert ours.sums == pytest.approx(theirs.sums, rel=1e-12, abs=1e-9), column


def test_spark_scores_a_table_as_the_embedded_engine(spark, flights):
    from esteira.serving.batch import predict_table
    from esteira.spark.scoring import predict_table_spark

    embedded = predict_table(flights, "flight_delays", "flight_features", "by_pandas",
                             keep=["flight", "delayed"])  # fmt: skip
    spark_run = predict_table_spark(flights, "flight_delays", "flight_features", "by_spark",
                                    keep=["flight", "delayed"], spark=spark)  # fmt: skip
    assert spark_run.rows == embedded.rows > 20_000
    assert (spark_run.input_version, spark_run.version) == (embedded.input_version, "1")
    ours, _ = flights.lake.read("by_spark")
    theirs, _ = flights.lake.read("by_pandas")
    assert list(ours.columns) == list(theirs.columns)
    assert ours.dtypes.to_dict() == theirs.dtypes.to_dict()
    inputs = [c for c in theirs.columns if c not in {*LINEAGE, "prediction", "predicted_at"}]
    ours = ours.sort_values([*inputs, "prediction"]).reset_index(drop=True)
    theirs = theirs.sort_values([*inputs, "prediction"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours[inputs], theirs[inputs])
    assert np.abs(ours.prediction - theirs.prediction).max() < 1e-12
    assert set(ours.prediction_run) == {spark_run.run_id}
    assert ours[LINEAGE[:-1]].drop_duplicates().values.tolist() == [
        ["flight_delays", "1", "flight_features", embedded.input_version]
    ]
    stored = {r.run_id: r for r in flights.metadata.batch_predictions("flight_delays")}
    assert stored[spark_run.run_id].output_table == "by_spark"
    assert stored[spark_run.run_id].rows == spark_run.rows


def test_spark_monitors_a_table_as_the_embedded_engine(spark, flights):
    from esteira.monitoring.job import run_monitor
    from esteira.spark.monitoring import monitor_table_spark

    theirs = run_monitor(flights, "flight_delays", table="flight_features", batch="2013-01")
    ours = monitor_table_spark(flights, "flight_delays", "flight_features", batch="2013-01",
                               spark=spark)  # fmt: skip
    a, b = ours.record, theirs.record
    assert (a.rows, a.batch, a.drift_share) == (b.rows, b.batch, b.drift_share)
    assert set(a.drifted) == set(b.drifted) and "prediction" in a.drifted
    for column, found in b.drifted.items():
        mine = a.drifted[column]
        assert (mine["test"], mine["drifted"]) == (found["test"], found["drifted"]), column
        assert mine["psi"] == pytest.approx(found["psi"], abs=1e-6), column  # the same counts
        # Wasserstein from the tally's grid: within a grid bin's width of the exact figure.
        assert mine["value"] == pytest.approx(found["value"], abs=2e-3), column
    segments, task = b.metrics.pop("segments"), b.metrics.pop("task")
    assert a.metrics.pop("segments").keys() == segments.keys()
    assert a.metrics.pop("task") == task == "binary"
    assert a.metrics == pytest.approx(b.metrics, rel=1e-9)
    assert "<svg" in ours.report.read_text()


def test_spark_says_what_there_is_when_a_batch_has_no_rows(spark, flights):
    from esteira.errors import EsteiraError
    from esteira.spark.monitoring import monitor_table_spark
    from esteira.spark.scoring import predict_table_spark

    with pytest.raises(EsteiraError, match=r"no rows of batch 2099-01 \(batches: 2013-01"):
        monitor_table_spark(flights, "flight_delays", "flight_features", batch="2099-01",
                            spark=spark)  # fmt: skip
    kept, _ = flights.lake.read("flight_features")
    flights.lake.replace("nothing_yet", kept.head(0))
    done = predict_table_spark(flights, "flight_delays", "nothing_yet", "never_written",
                               spark=spark)  # fmt: skip
    assert done.rows == 0 and not flights.lake.exists("never_written")


def test_spark_scores_and_monitors_a_multiclass_model(spark, tmp_path):
    from esteira.monitoring.job import run_monitor
    from esteira.serving.batch import predict_table
    from esteira.spark.monitoring import monitor_table_spark
    from esteira.spark.scoring import predict_table_spark

    project = _trained(tmp_path, "flight_status")
    predict_table(project, "flight_status", "flight_features", "by_pandas")
    predict_table_spark(project, "flight_status", "flight_features", "by_spark", spark=spark)
    ours, theirs = project.lake.read("by_spark")[0], project.lake.read("by_pandas")[0]
    assert len(ours.prediction[0]) == 4  # one probability per class
    assert np.allclose(np.stack(ours.prediction).sum(axis=1), 1.0)
    ordered = [np.array(sorted(map(tuple, t.prediction))) for t in (ours, theirs)]
    assert np.abs(ordered[0] - ordered[1]).max() < 1e-12

    a = monitor_table_spark(project, "flight_status", "flight_features", spark=spark).record
    b = run_monitor(project, "flight_status", table="flight_features").record
    assert a.drifted["prediction"]["psi"] == pytest.approx(b.drifted["prediction"]["psi"], abs=1e-6)
    assert a.metrics.keys() == b.metrics.keys() and a.metrics["log_loss"] > 0
    for name, value in b.metrics.items():
        if isinstance(value, float):
            assert a.metrics[name] == pytest.approx(value, rel=1e-9), name


def test_point_in_time_on_spark_follows_the_embedded_rules(spark, tmp_path):
    """Latest at or before the event (a value at its very time included), none older than
    the TTL, a missing key matching nothing; a static view by key, a global one by time."""
    from datetime import timedelta

    from esteira.features import feature_view
    from esteira.features.store import FeatureStore
    from esteira.spark.features import point_in_time

    t = pd.Timestamp("2013-01-01T00:00", tz="UTC")
    hours = [t + pd.Timedelta(hours=h) for h in range(8)]
    weather = feature_view("weather", source="w", entities=["airport"], timestamp="at",
                           features=["temp"], ttl=timedelta(hours=2))  # fmt: skip
    fleet = feature_view("fleet", source="f", entities=["plane"], features=["seats"])
    fuel = feature_view("fuel", source="p", entities=[], timestamp="at", features=["price"])
    lake = Lake(tmp_path / "lake")
    store = FeatureStore({v.name: v for v in (weather, fleet, fuel)}, lake, tmp_path / "o.db")
    lake.replace("features_weather", pd.DataFrame({
        "airport": ["JFK", "JFK", "JFK", "EWR", None],
        "at": [hours[1], hours[3], hours[6], hours[2], hours[0]],
        "temp": [1.0, 3.0, 6.0, 20.0, 99.0],
    }))  # fmt: skip
    lake.replace("features_fleet", pd.DataFrame({"plane": ["A", "B"], "seats": [100, 200]}))
    lake.replace("features_fuel", pd.DataFrame({"at": [hours[0], hours[5]], "price": [1.5, 2.5]}))
    events = pd.DataFrame({
        "id": range(8),
        "airport": ["JFK", "JFK", "JFK", "JFK", "JFK", "EWR", None, "LGA"],
        "plane": ["A", "B", "C", None, "A", "B", "A", "A"],
        # before any; at one's very time; 1 h after; 3 h after (stale); after a newer one
        "when": [hours[0], hours[3], hours[4], hours[6] + pd.Timedelta(hours=3), hours[7],
                 hours[5], hours[5], hours[5]],
    })  # fmt: skip
    views = ["weather", "fleet", "fuel"]
    embedded = store.training_set(events, views, at="when")
    chosen = [store.view(v) for v in views]
    ours = point_in_time(spark, store, spark.createDataFrame(events), chosen, "when").toPandas()
    ours = ours.sort_values("id").reset_index(drop=True)
    assert list(ours.columns) == list(embedded.columns)
    for column in ["temp", "seats", "price"]:
        mine, theirs = ours[column].astype(float), embedded[column].astype(float)
        assert mine.fillna(-1).tolist() == theirs.fillna(-1).tolist(), column
    assert embedded.temp.fillna(-1).tolist() == [-1, 3.0, 3.0, -1, 6.0, -1, -1, -1]


def test_spark_materializes_views_as_the_embedded_engine(spark, flights):
    import sqlite3

    from esteira.spark.features import materialize_spark

    def stored(view: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        offline, _ = flights.lake.read(f"features_{view}")
        with sqlite3.connect(flights.features.online_path) as con:
            online = pd.read_sql(f'SELECT * FROM "{view}"', con)
        return (offline.sort_values(list(offline.columns)).reset_index(drop=True),
                online.sort_values(list(online.columns)).reset_index(drop=True))  # fmt: skip

    for view in ("weather_at_origin", "plane"):  # `plane` has a transform (a rename)
        theirs = flights.features.materialize(view)
        before = stored(view)
        ours = materialize_spark(flights.features, view, spark)
        after = stored(view)
        assert ours["rows"] == theirs["rows"] > 1000
        assert ours["offline_version"] == theirs["offline_version"] + 1
        for mine, embedded in zip(after, before, strict=True):
            pd.testing.assert_frame_equal(mine, embedded, check_dtype=False)


def test_spark_scores_departures_with_their_features_as_of_their_time(spark, flights):
    from esteira.serving.batch import predict_table
    from esteira.spark.scoring import predict_table_spark

    fields = ["scheduled_at", "carrier", "origin", "dest", "tailnum", "distance", "flight"]
    kept, _ = flights.lake.read("flight_features")
    flights.lake.replace("departures_only", kept[fields])
    embedded = predict_table(flights, "flight_delays", "departures_only", "looked_up_by_pandas",
                             keep=["flight"])  # fmt: skip
    predict_table_spark(flights, "flight_delays", "departures_only", "looked_up_by_spark",
                        keep=["flight"], spark=spark)  # fmt: skip
    ours, _ = flights.lake.read("looked_up_by_spark")
    theirs, _ = flights.lake.read("looked_up_by_pandas")
    expected = ["flight", *fields[:-1], "prediction", *LINEAGE, "predicted_at"]
    assert list(ours.columns) == list(theirs.columns) == expected
    paired = theirs.merge(ours, on=fields, suffixes=("", "_spark"))
    assert len(paired) == len(ours) == embedded.rows
    assert np.abs(paired.prediction - paired.prediction_spark).max() < 1e-12


def _refused(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = REPO / "examples" / "flight_delays"
    return subprocess.run(
        [sys.executable, "-m", "esteira.cli", "predict", "-p", str(root), "--input", "rows",
         "--output", "scored", "--engine", "spark", "--version", "1"],
        capture_output=True, text=True, timeout=120,
        env={"HOME": str(tmp_path), "ESTEIRA_HOME": str(tmp_path / "home")} | env,
    )  # fmt: skip


def test_the_command_says_when_java_is_missing(tmp_path):
    out = _refused(tmp_path, {"PATH": str(Path(sys.executable).parent)})
    assert out.returncode == 1
    assert "needs Java 17 or newer" in out.stderr and "Traceback" not in out.stderr


def test_the_command_says_when_pyspark_is_missing(tmp_path):
    shadow = tmp_path / "shadow" / "pyspark"  # a pyspark that cannot be imported
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no pyspark here')\n")
    out = _refused(tmp_path, {"PATH": os.environ["PATH"], "PYTHONPATH": str(shadow.parent)})
    assert out.returncode == 1
    assert "needs pyspark: pip install 'esteira-mlops[spark]'" in out.stderr
    assert "Traceback" not in out.stderr
