"""`esteira ci`: the ML test battery passes a sound project and fails, with its reason, on
each kind of broken one. Each broken project runs only the checks it is about."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from test_cli import esteira
from test_steps import PIPELINE

from esteira.cicd.battery import (
    CHECKS,
    beats_baseline,
    finite_metrics,
    pipelines_run,
    reproducible,
    run_battery,
    unit_tests,
)
from esteira.cicd.evidence import NO_MODEL
from esteira.cicd.ingested import ingested_tables_validated
from esteira.cicd.outputs import declared_outputs, stable_schemas
from esteira.cicd.skew import training_serving_skew

# The steps' flow alone (its `unnamed` pipeline is broken on purpose), on a small sample.
GOOD = PIPELINE.replace('unnamed = pipeline("unnamed", [data, register_nothing, promote])', "")
SMALL = "[ci.params.flow]\nseed = 3\n"
# The broken projects' own gates need not time the model in a fresh process.
QUICK = SMALL + "[gates]\ncheck_compatibility = false\n"


def only(results, name):
    (found,) = [r for r in results if r.name == name]
    return found


def test_a_sound_project_passes_every_check_and_writes_junit(write_project, tmp_path):
    root = write_project(GOOD, SMALL)
    (root / "tests").mkdir()
    (root / "tests" / "test_rows.py").write_text(
        "from pipelines import rows\n\n\ndef test_rows():\n    assert len(rows(0, 10, 0.0)) == 10\n"
    )
    report = tmp_path / "reports" / "ci.xml"
    done = esteira("ci", "-p", str(root), "--junit", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing in the lake and no feature service: those two checks say why they skip.
    skipped = "2 skipped (ingested_tables_validated, training_serving_skew)"
    assert f"esteira ci passed: 9 checks, {skipped}" in done.stdout
    assert "beats_baseline" in done.stdout and "[6/11]" in done.stdout
    assert "not trained through a feature service" in done.stdout
    assert not (root / ".esteira").exists()  # the battery's stores were throwaway

    suite = ET.parse(report).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.__name__ for c in CHECKS]
    assert suite.get("failures") == "0" and not suite.findall(".//failure")
    assert suite.get("skipped") == "2" and len(suite.findall(".//skipped")) == 2
    stable = next(c for c in cases if c.get("name") == "stable_schemas")
    assert '"x1": "float64"' in stable.find("system-out").text
    baseline = next(c for c in cases if c.get("name") == "beats_baseline")
    assert '"baseline_value": 0.5' in baseline.find("system-out").text  # a constant's roc_auc


def test_a_step_that_omits_a_declared_output_fails_naming_it(write_project):
    code = GOOD.replace(
        "return rows(seed, 2000, flipped), rows(1000, 2000, 0.05)",
        'return {"train_set": rows(seed, 500, 0.0)}',
    )
    ran, declared = run_battery(write_project(code, QUICK), [pipelines_run, declared_outputs])
    assert not ran.passed
    assert "pipeline 'flow' failed at step 'data'" in ran.reason
    assert "declares outputs ['train_set', 'test_set']" in ran.reason
    assert not declared.passed
    assert declared.reason.startswith("flow.data did not return its declared output 'test_set'")


def test_an_output_whose_dtype_changes_between_runs_fails_stable_schemas(write_project):
    # The second run (and only it) returns x2 as float32.
    code = GOOD.replace(
        "return rows(seed, 2000, flipped), rows(1000, 2000, 0.05)",
        "import pathlib\n"
        '    ran = pathlib.Path(__file__).with_name("ran_once")\n'
        "    train_set = rows(seed, 2000, flipped)\n"
        "    if ran.exists():\n"
        '        train_set["x2"] = train_set["x2"].astype("float32")\n'
        "    ran.touch()\n"
        "    return train_set, rows(1000, 2000, 0.05)",
    )
    (result,) = run_battery(write_project(code, QUICK), [stable_schemas])
    assert not result.passed
    assert result.reason == "flow.data output 'train_set' column 'x2': float64, then float32"
    assert result.evidence["flow"]["outputs"]["register.registered"] == {"type": "dict"}


def test_a_nan_metric_fails_finite_metrics(write_project):
    code = GOOD.replace(
        "def train(train_set):\n",
        'def train(ctx, train_set):\n    ctx.log_metrics({"train_loss": float("nan")})\n',
    )
    (result,) = run_battery(write_project(code, QUICK), [finite_metrics])
    assert not result.passed
    assert "flow.train: train_loss = nan" in result.reason


def test_a_model_no_better_than_the_baseline_fails_beats_baseline(write_project):
    code = GOOD.replace(
        "return LogisticRegression().fit(",
        "from sklearn.dummy import DummyClassifier\n"
        '    return DummyClassifier(strategy="prior").fit(',
    )
    (result,) = run_battery(write_project(code, QUICK), [beats_baseline])
    assert not result.passed
    assert "no better than a trivial baseline: roc_auc 0.5 against 0.5" in result.reason
    assert result.evidence["flow"]["baseline_value"] == 0.5


def test_training_that_is_not_reproducible_fails_reproducible(write_project):
    code = GOOD.replace(
        "return LogisticRegression().fit(train_set[",
        "import os\n"
        '    seed = int.from_bytes(os.urandom(4), "big")\n'
        "    train_set = train_set.sample(frac=0.5, random_state=seed)\n"
        "    return LogisticRegression().fit(train_set[",
    )
    (result,) = run_battery(write_project(code, QUICK), [reproducible])
    assert not result.passed
    assert "flow: not reproducible: largest relative difference" in result.reason
    assert result.evidence["flow"]["max_relative_difference"] > 1e-6


def test_a_failing_unit_test_fails_unit_tests_and_no_model_passes_the_model_checks(
    write_project,
):
    # Only the data step: the model checks have nothing to judge.
    code = GOOD.replace("[data, train, register, promote]", "[data]")
    root = write_project(code, QUICK)
    (root / "tests").mkdir()
    (root / "tests" / "test_features.py").write_text(
        "def test_ok():\n    pass\n\n\ndef test_feature():\n    assert 1 == 2\n"
    )
    results = run_battery(root)
    unit = only(results, "unit_tests")
    assert not unit.passed
    assert unit.reason.startswith("failed: ") and "test_features.py::test_feature" in unit.reason
    assert "test_ok" not in unit.reason
    assert only(results, "pipelines_run").passed
    for name in ("beats_baseline", "finite_predictions", "reproducible", "loads_in_fresh_process"):
        assert (only(results, name).passed, only(results, name).reason) == (True, NO_MODEL)


def test_tests_without_pytest_installed_fail_unit_tests_saying_how_to_install_it(
    tmp_path, monkeypatch
):
    """`pip install esteira-mlops` brings no pytest: a project's tests that cannot run are
    not a pass, and the reason says what to install."""
    from types import SimpleNamespace

    from esteira.cicd import battery

    (tmp_path / "tests").mkdir()
    monkeypatch.setattr(battery, "find_spec", lambda name: None if name == "pytest" else object())
    result = unit_tests(SimpleNamespace(root=tmp_path, environ={}))
    assert not result.passed
    assert result.reason.startswith("pytest is not installed in this environment")
    assert result.reason.endswith("did not run: pip install pytest")


# A model trained through a feature service on a table its pipeline ingests.
FEATURED = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from esteira import pipeline, step
from esteira.features import feature_service, feature_view

SITES = [f"s{i}" for i in range(6)]
HOURS = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
INPUTS = ["size", "temp", "hour"]

temps = feature_view("temps", source="raw_readings", entities=["site"], timestamp="at",
                     features=["temp"])


def visit_inputs(rows):
    return rows.assign(hour=rows["when"].dt.tz_convert("UTC").dt.hour * 1.0)


visit = feature_service("visit", request={"site": "string", "when": "datetime", "size": "double"},
                        views=[temps], at="when", derive=visit_inputs)


@step
def ingest(ctx):
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([(s, at) for s in SITES for at in HOURS], columns=["site", "at"])
    rows["temp"] = rng.normal(size=len(rows))
    ctx.validate_batch(rows, "raw_readings", "2024-01")
    ctx.replace_table("raw_readings", rows)
    return len(rows)


@step
def materialize(ctx, ingest):
    return ctx.features.materialize(temps)


@step(outputs=("train_set", "test_set"))
def data(ctx, materialize, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 400
    events = pd.DataFrame({"site": rng.choice(SITES, n), "size": rng.normal(size=n),
                           "when": HOURS[rng.integers(0, len(HOURS), n)] + pd.Timedelta("30min")})
    table = ctx.features.training_set(events, visit)
    table["label"] = (table["temp"] + table["size"] > 0).astype(int)
    return table.iloc[:300].reset_index(drop=True), table.iloc[300:].reset_index(drop=True)


@step(outputs="model")
def train(train_set):
    return LogisticRegression().fit(train_set[INPUTS], train_set.label)


@step(outputs="registered")
def register(ctx, model, test_set):
    m = ctx.log_model(model, test_set[INPUTS].head(3), register_as="visits",
                      predict_fn="predict_proba", alias="challenger", features=visit)
    return {"name": m.name, "version": m.version}


flow = pipeline("flow", [ingest, materialize, data, train, register])
"""


def test_a_validated_ingest_and_a_skew_free_feature_service_pass(write_project):
    checks = [declared_outputs, ingested_tables_validated, stable_schemas, training_serving_skew]
    results = run_battery(write_project(FEATURED, QUICK), checks)
    assert [(r.name, r.verdict) for r in results] == [(c.__name__, "passed") for c in checks]
    declared, ingested, _, skew = results
    assert declared.evidence["flow"]["data"] == ["test_set", "train_set"]
    # The raw table is ingested (its first batch validated, on record); the feature view's
    # offline table is derived from it, so needs no validation of its own.
    assert ingested.evidence["ingested"] == {
        "raw_readings": {"step": "flow.ingest", "validated_batches": ["2024-01"]}
    }
    assert ingested.evidence["derived"] == {"features_temps": "flow.materialize, from raw_readings"}
    assert skew.reason.startswith(
        "flow: 5 sample entities get the same 3 inputs offline and online (15 values"
    )
    assert skew.evidence["flow"]["at"] == "2024-01-02 23:00:00+00:00"  # the newest reading


def test_tables_written_without_validation_fail_naming_the_table_and_its_writer(write_project):
    code = FEATURED.replace(
        '    ctx.validate_batch(rows, "raw_readings", "2024-01")\n',
        '    ctx.replace_table("raw_sites", pd.DataFrame({"site": SITES}))\n'
        '    ctx.lake.replace("raw_notes", pd.DataFrame({"note": ["unrecorded"]}))\n',
    )
    (result,) = run_battery(write_project(code, QUICK), [ingested_tables_validated])
    assert not result.passed
    for table in ("raw_readings", "raw_sites"):
        assert (
            f"flow.ingest wrote lake table '{table}' without validating it: call "
            f"ctx.validate_batch(df, '{table}', batch) before writing it"
        ) in result.reason
    assert "lake table 'raw_notes' was written by no recorded step write" in result.reason


def test_a_feature_service_that_serves_other_inputs_than_it_trained_on_fails_skew(
    write_project,
):
    # Inputs that are not a function of the request and the views: each lookup differs.
    code = FEATURED.replace("dt.hour * 1.0", "dt.hour + np.random.default_rng().random(len(rows))")
    (result,) = run_battery(write_project(code, QUICK), [training_serving_skew])
    assert not result.passed
    assert result.reason.startswith("flow: offline and online inputs differ: site=s")
    assert ": hour is " in result.reason and " offline, " in result.reason
    assert len(result.evidence["flow"]["differences"]) == 5  # every sampled entity
