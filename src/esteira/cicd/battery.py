"""The ML test battery of `esteira ci`: named checks on a project's code, each with its
verdict, reason and evidence, in the order of `CHECKS`.

Everything runs in a throwaway home (a temporary folder for every store, removed afterwards),
so CI never touches the project's lake, runs or registry. The checks share one `Evidence`:
the pipelines run once for the checks that need their outputs and a second time only for
the checks that compare two runs (`reproducible`, `stable_schemas`).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.cicd.evidence import (
    CheckResult,
    Evidence,
    Trained,
    Verdict,
    each_model,
    first_line,
    predictions_on,
    trained_by,
)
from esteira.cicd.ingested import ingested_tables_validated
from esteira.cicd.outputs import declared_outputs, stable_schemas
from esteira.cicd.skew import training_serving_skew
from esteira.config import ENV_VARIABLE, ENVIRONMENT, HOME_VARIABLE

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from esteira.metrics import Scores

# -- the checks, in the order they run ------------------------------------------------------


def unit_tests(e: Evidence) -> CheckResult:
    tests = e.root / "tests"
    if not tests.is_dir():
        return CheckResult("unit_tests", True, "no tests/ folder")
    if find_spec("pytest") is None:  # the project has tests: not running them is no pass
        reason = (f"pytest is not installed in this environment ({sys.executable}), so {tests} "
                  "did not run: pip install pytest")  # fmt: skip
        return CheckResult("unit_tests", False, reason)
    # no cacheprovider: CI leaves no .pytest_cache in the project
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)]
    done = subprocess.run(command, cwd=e.root, env=e.environ, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else done.stderr.strip()[-300:]
    failed = [m.group(2) for m in map(re.compile(r"^(FAILED|ERROR) (\S+)").match, lines) if m]
    evidence = {"exit_code": done.returncode, "summary": summary, "failed": failed}
    if done.returncode == 0:
        return CheckResult("unit_tests", True, summary, evidence)
    if done.returncode == 5:  # pytest: no tests collected
        return CheckResult("unit_tests", True, f"no tests in {tests}", evidence)
    reason = f"failed: {', '.join(failed)}" if failed else f"pytest failed: {summary}"
    return CheckResult("unit_tests", False, reason, evidence)


def pipelines_run(e: Evidence) -> CheckResult:
    unknown = sorted(set(e.project.settings.ci.params) - set(e.project.pipelines))
    evidence: dict[str, Any] = {
        o.pipeline: {"run_id": o.run_id, "params": o.params, "completed": o.result is not None,
                     "failed_step": o.failed_step, "error": o.error}
        for o in e.runs.values()
    }  # fmt: skip
    problems = [o.describe() for o in e.runs.values() if o.result is None]
    if unknown:
        known = ", ".join(sorted(e.project.pipelines)) or "none"
        problems.append(f"[ci] params names no pipeline {', '.join(unknown)} (pipelines: {known})")
    if problems:
        return CheckResult("pipelines_run", False, "; ".join(problems), evidence)
    if not e.runs:
        return CheckResult("pipelines_run", True, "the project defines no pipeline", evidence)
    ran = ", ".join(
        f"{o.pipeline} ({o.result.duration_s:.1f} s)" for o in e.runs.values() if o.result
    )
    return CheckResult("pipelines_run", True, f"ran end to end: {ran}", evidence)


def finite_metrics(e: Evidence) -> CheckResult:
    checked, bad = 0, []
    for o in e.runs.values():
        if not o.run_id:
            continue
        for step_run in e.project.metadata.run(o.run_id).steps:
            for name, value in (step_run.metrics or {}).items():
                checked += 1
                if not _finite_number(value):
                    bad.append(f"{o.pipeline}.{step_run.step}: {name} = {value}")
    evidence = {"metrics": checked, "not_finite": bad}
    if bad:
        return CheckResult("finite_metrics", False, "not finite: " + ", ".join(bad), evidence)
    return CheckResult("finite_metrics", True, f"all {checked} step metrics are finite", evidence)


def beats_baseline(e: Evidence) -> CheckResult:
    return each_model(e, "beats_baseline", _versus_baseline)


def finite_predictions(e: Evidence) -> CheckResult:
    return each_model(e, "finite_predictions", _finite_predictions)


def reproducible(e: Evidence) -> CheckResult:
    return each_model(e, "reproducible", _same_predictions_again)


def loads_in_fresh_process(e: Evidence) -> CheckResult:
    return each_model(e, "loads_in_fresh_process", _loads_in_fresh_process)


Check = Callable[[Evidence], CheckResult]
CHECKS: list[Check] = [
    unit_tests,
    pipelines_run,
    declared_outputs,
    finite_metrics,
    ingested_tables_validated,  # before training_serving_skew, which materializes views
    beats_baseline,
    finite_predictions,
    reproducible,
    stable_schemas,  # after reproducible: both compare the same two runs
    loads_in_fresh_process,
    training_serving_skew,
]

# -- judging each registered model ----------------------------------------------------------


def _versus_baseline(e: Evidence, t: Trained) -> Verdict:
    from esteira.metrics import metric, resolve_metric, score, why_undefined

    settings = e.project.settings
    label = settings.ct.label
    for frame, what in ((t.test_set, "test_set"), (t.reference, "train_set")):
        if label not in frame.columns:
            return False, f"{what} has no label column '{label}'; set [ct] label", {}
    key = resolve_metric(settings.gates.metric, t.scores.task, "[gates] metric")
    y = t.test_set[label].to_numpy()
    base, told = baseline(t.scores, t.reference[label])
    ours = score([key], y, t.scores, settings.model.threshold).get(key)
    theirs = score([key], y, base, settings.model.threshold).get(key)
    if ours is None or theirs is None:
        return False, f"{key} is not defined: {why_undefined(key, y, t.scores)}", {}
    figures = {"metric": key, "model_value": ours, "baseline_value": theirs, "baseline": told}
    verdict = f"{key} {ours:.4g} against {theirs:.4g} for the baseline ({told})"
    if metric(key).worse_by(ours, theirs) < 0:
        return True, verdict, figures
    return False, f"no better than a trivial baseline: {verdict}", figures


def baseline(scores: Scores, labels: pd.Series) -> tuple[Scores, str]:
    """A model that knows only the labels it learned from: the class shares (binary: the
    positive class's share) or the mean, the same for every row; and what it predicts."""
    import numpy as np

    from esteira.metrics import Scores

    rows = len(scores)
    if scores.task == "regression":
        mean = float(np.mean(labels.astype(float)))
        return Scores("regression", np.full(rows, mean)), f"the mean, {mean:.4g}"
    shares = labels.value_counts(normalize=True)
    if scores.task == "binary":
        positive = scores.classes[-1] if scores.classes else 1
        share = float(shares.get(positive, 0.0))
        constant = Scores("binary", np.full(rows, share), scores.classes)
        return constant, f"class {positive}'s share, {share:.3g}, for every row"
    if scores.has_probabilities:
        row = [float(shares.get(c, 0.0)) for c in scores.classes]
        return replace_values(scores, np.tile(row, (rows, 1))), "each class's share"
    majority = shares.idxmax()
    return replace_values(scores, np.full(rows, majority, dtype=object)), f"class {majority}"


def replace_values(scores: Scores, values: np.ndarray) -> Scores:
    from dataclasses import replace

    return replace(scores, values=values)


def _finite_predictions(e: Evidence, t: Trained) -> Verdict:
    values = t.predictions
    bad = int(sum(not _finite_number(v) for v in values.ravel()))
    figures = {"predictions": int(values.size), "not_finite": bad}
    if bad:
        told = f"{bad} of {values.size} predictions on test_set are missing, NaN or infinite"
        return False, told, figures
    return True, f"all {values.size} predictions on test_set are finite", figures


def _same_predictions_again(e: Evidence, t: Trained) -> Verdict:
    import numpy as np

    again = e.reruns[t.pipeline]
    if again.result is None:
        return False, f"the second run failed: {again.describe()}", {}
    second = trained_by(e.project, again)
    if second is None:
        return False, "the second run registered no model", {}
    tolerance = e.project.settings.ci.tolerance
    a, b = t.predictions, predictions_on(second.model, t.test_set)
    figures: dict[str, Any] = {"second_model": second.label, "tolerance": tolerance}
    if a.shape != b.shape:
        return False, f"predictions of shape {a.shape}, then {b.shape}", figures
    if a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":  # class labels: equal or not
        differ = int((a != b).sum())
        figures["differing"] = differ
        if differ:
            return False, f"{differ} of {a.size} predicted classes differ in a second run", figures
        return True, f"two runs predict the same {a.size} classes", figures
    a, b = a.astype(float), b.astype(float)
    scale = np.maximum(np.abs(a), np.abs(b))
    gap = np.divide(np.abs(a - b), scale, out=np.zeros_like(scale), where=scale > 0)
    worst = float(gap.max()) if gap.size else 0.0
    figures["max_relative_difference"] = worst
    told = f"largest relative difference between two runs {worst:.3g} (tolerance {tolerance:g})"
    if worst > tolerance:
        return False, f"not reproducible: {told}", figures
    return True, told, figures


def _loads_in_fresh_process(e: Evidence, t: Trained) -> Verdict:
    from esteira.validation.compatibility import check_compatibility

    # Only whether it loads and answers counts here: an absolute budget skips timing the model
    # again in this process; the latency gate is the CD's and promote's.
    config = e.project.settings.gates.model_copy(update={"latency_budget_ms": math.inf})
    found = check_compatibility(e.project, t.model.uri, config)
    found.pop("budget_ms", None)
    if not found.get("ok"):
        return False, found.get("error") or "failed", found
    took = f"{found['median_ms']:.1f} ms"
    return True, f"loads in a fresh process and predicts its input example in {took}", found


def _finite_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -- running the battery --------------------------------------------------------------------

Progress = Callable[[str, CheckResult | None], None]
"""Told each check's name as it starts (result None), then with its result."""


def throwaway_environ(home: Path) -> dict[str, str]:
    """This process's environment with every store in `home`, in dev: the variables override
    esteira.toml and the environments, so nothing can reach the project's own stores."""
    stores = {
        HOME_VARIABLE: str(home),
        ENV_VARIABLE: "dev",
        ENVIRONMENT["tracking.uri"]: f"sqlite:///{home / 'mlflow.db'}",
        ENVIRONMENT["tracking.registry_uri"]: f"sqlite:///{home / 'mlflow.db'}",
        ENVIRONMENT["metadata.url"]: f"sqlite:///{home / 'esteira.db'}",
        ENVIRONMENT["lake.path"]: str(home / "lake"),
    }
    return {**os.environ, **stores}


def run_battery(
    root: str | os.PathLike[str],
    checks: list[Check] | None = None,
    progress: Progress | None = None,
) -> list[CheckResult]:
    """Run `checks` (default: all of `CHECKS`, in order) on the project at `root`."""
    from esteira.project import load_project

    tell = progress or (lambda name, result: None)
    home = Path(tempfile.mkdtemp(prefix="esteira-ci-"))
    try:
        environ = throwaway_environ(home)
        evidence = Evidence(load_project(root, environ=environ), environ)
        results = []
        for check in CHECKS if checks is None else checks:
            tell(check.__name__, None)
            started = time.perf_counter()
            try:
                result = check(evidence)
            except Exception as error:  # a check that breaks fails, and the others still run
                result = CheckResult(check.__name__, False, f"could not check: {first_line(error)}")
            result.duration_s = time.perf_counter() - started
            results.append(result)
            tell(check.__name__, result)
        return results
    finally:
        shutil.rmtree(home, ignore_errors=True)
