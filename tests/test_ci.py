"""`esteira ci`: the ML test battery passes a sound project and fails, with its reason, on
each kind of broken one. Each broken project runs only the checks it is about."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from test_cli import esteira
from test_steps import PIPELINE

from esteira.cicd.battery import (
    CHECKS,
    NO_MODEL,
    beats_baseline,
    finite_metrics,
    pipelines_run,
    reproducible,
    run_battery,
)

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
    assert "esteira ci passed: all 7 checks" in done.stdout
    assert "beats_baseline" in done.stdout and "[4/7]" in done.stdout
    assert not (root / ".esteira").exists()  # the battery's stores were throwaway

    suite = ET.parse(report).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.__name__ for c in CHECKS]
    assert suite.get("failures") == "0" and not suite.findall(".//failure")
    baseline = next(c for c in cases if c.get("name") == "beats_baseline")
    assert '"baseline_value": 0.5' in baseline.find("system-out").text  # a constant's roc_auc


def test_a_step_that_omits_a_declared_output_fails_pipelines_run(write_project):
    code = GOOD.replace(
        "return rows(seed, 2000, flipped), rows(1000, 2000, 0.05)", "return rows(seed, 500, 0.0)"
    )
    (result,) = run_battery(write_project(code, QUICK), [pipelines_run])
    assert not result.passed
    assert "pipeline 'flow' failed at step 'data'" in result.reason
    assert "declares outputs ['train_set', 'test_set']" in result.reason


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
