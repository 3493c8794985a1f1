"""Model validation gates: may this challenger replace the champion?

Evidence is gathered once: challenger and champion, both loaded from the registry, score
the same (newest) test data, overall and per segment, and the challenger is loaded again
in a fresh process to predict its input example within a latency budget. Each gate is a
function from that evidence to a check that passed or failed, with its reason; the decision
is stored with the figures behind it. Gates are on by default: with no champion yet, the
comparison gates pass and say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.config import GatesConfig
from esteira.errors import EsteiraError
from esteira.metadata import GateDecision
from esteira.metrics import metric, score

if TYPE_CHECKING:
    import pandas as pd

    from esteira.project import Project


@dataclass
class Check:
    name: str
    passed: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evidence:
    model: str
    version: str
    champion_version: str | None
    rows: int
    challenger: dict[str, float]
    champion: dict[str, float] | None
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """segment value -> rows, challenger and champion value of the gate metric"""
    compatibility: dict[str, Any] | None = None


@dataclass
class Decision:
    model: str
    version: str
    champion_version: str | None
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        told = [c for c in self.checks if not c.passed] or self.checks
        return f"version {self.version} {verdict} the gates: " + "; ".join(
            f"{c.name}: {c.reason}" for c in told
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "champion_version": self.champion_version,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }


Gate = Callable[[Evidence, GatesConfig], Check]


def thresholds_gate(e: Evidence, config: GatesConfig) -> Check:
    failures = []
    for name, limit in config.thresholds.items():
        m = metric(name)
        value = e.challenger.get(name)
        if value is None:
            failures.append(f"{name} could not be computed on the test data")
        elif m.worse_by(value, limit) > 0:
            side = "below the floor" if m.greater_is_better else "above the ceiling"
            failures.append(f"{name} {value:.4f} is {side} {limit}")
    reason = "; ".join(failures) or (
        "all within limits" if config.thresholds else "no absolute thresholds set"
    )
    return Check("thresholds", not failures, reason, {"limits": config.thresholds})


def champion_gate(e: Evidence, config: GatesConfig) -> Check:
    name = config.metric
    if e.champion is None:
        return Check("versus_champion", True, "no champion yet: nothing to compare with")
    ours, theirs = e.challenger.get(name), e.champion.get(name)
    if ours is None or theirs is None:
        return Check("versus_champion", False, f"{name} could not be computed on the test data")
    worse = metric(name).worse_by(ours, theirs)
    figures = {
        "metric": name,
        "challenger": ours,
        "champion": theirs,
        "tolerance": config.tolerance,
    }
    text = f"{name} {ours:.4f} vs champion v{e.champion_version} {theirs:.4f}"
    if worse > config.tolerance:
        return Check("versus_champion", False, f"{text}: worse by {worse:.4f}", figures)
    return Check("versus_champion", True, text, figures)


def segment_gate(e: Evidence, config: GatesConfig) -> Check:
    if config.segment is None:
        return Check("segments", True, "no segment column set")
    if e.champion is None:
        return Check("segments", True, "no champion yet: nothing to compare with")
    m = metric(config.metric)
    behind = {
        seg: f["challenger"] - f["champion"]
        for seg, f in e.segments.items()
        if f["champion"] is not None
        and f["challenger"] is not None
        and m.worse_by(f["challenger"], f["champion"]) > config.segment_tolerance
    }
    figures = {"segment": config.segment, "segments": e.segments}
    if behind:
        listed = ", ".join(f"{seg} ({gap:+.4f})" for seg, gap in sorted(behind.items()))
        reason = f"{config.metric} behind the champion by more than {config.segment_tolerance}"
        return Check("segments", False, f"{reason} in {listed}", figures)
    return Check("segments", True, f"no {config.segment} falls behind the champion", figures)


def compatibility_gate(e: Evidence, config: GatesConfig) -> Check:
    if e.compatibility is None:
        return Check("compatibility", True, "not checked (check_compatibility = false)")
    c = e.compatibility
    if not c.get("ok"):
        return Check("compatibility", False, c.get("error", "failed"), c)
    if c["median_ms"] > config.latency_budget_ms:
        budget = config.latency_budget_ms
        reason = f"predicts its example in {c['median_ms']:.1f} ms, over the {budget} ms budget"
        return Check("compatibility", False, reason, c)
    reason = f"loads from {c['uri']} in a fresh process and predicts in {c['median_ms']:.1f} ms"
    return Check("compatibility", True, reason, c)


GATES: list[Gate] = [thresholds_gate, champion_gate, segment_gate, compatibility_gate]


def decide(
    project: Project,
    name: str,
    version: str,
    test: pd.DataFrame,
    label: str,
    pipeline_run_id: str | None = None,
    config: GatesConfig | None = None,
) -> Decision:
    """Judge `version` of model `name` on `test` (with its `label` column); record it."""
    config = config or project.settings.gates
    evidence = gather(project, name, version, test, label, config)
    decision = Decision(
        name, version, evidence.champion_version, [g(evidence, config) for g in GATES]
    )
    project.metadata.add(
        GateDecision(
            model=name,
            version=version,
            champion_version=evidence.champion_version,
            passed=decision.passed,
            summary=decision.summary(),
            checks=decision.to_dict(),
            pipeline_run_id=pipeline_run_id,
        )
    )
    if not decision.passed:
        project.metadata.add_alert(
            "gate", f"{name}/{version}", decision.summary(), decision.to_dict(), pipeline_run_id
        )
    return decision


def gather(
    project: Project, name: str, version: str, test: pd.DataFrame, label: str, config: GatesConfig
) -> Evidence:
    from esteira.registry import CHAMPION, Registry

    if label not in test.columns:
        raise EsteiraError(f"the test data has no label column '{label}'")
    champion = Registry(project).by_alias(name, CHAMPION)
    champion_version = champion.version if champion and champion.version != str(version) else None
    names = sorted({config.metric, *config.thresholds})
    ours = predict_scores(project, f"models:/{name}/{version}", test)
    theirs = (
        predict_scores(project, f"models:/{name}/{champion_version}", test)
        if champion_version
        else None
    )
    y = test[label].to_numpy()
    evidence = Evidence(
        name,
        str(version),
        champion_version,
        len(test),
        score(names, y, ours),
        score(names, y, theirs) if theirs is not None else None,
    )
    if config.segment and theirs is not None:
        evidence.segments = _segments(test, config, y, ours, theirs)
    if config.check_compatibility:
        evidence.compatibility = check_in_fresh_process(project, f"models:/{name}/{version}")
    return evidence


def _segments(
    test: pd.DataFrame, config: GatesConfig, y: np.ndarray, ours: np.ndarray, theirs: np.ndarray
) -> dict[str, dict[str, Any]]:
    if config.segment not in test.columns:
        raise EsteiraError(f"the test data has no segment column '{config.segment}'")
    out: dict[str, dict[str, Any]] = {}
    for value, index in test.groupby(config.segment).indices.items():
        if len(index) < config.min_segment_rows:
            continue
        a = score([config.metric], y[index], ours[index]).get(config.metric)
        b = score([config.metric], y[index], theirs[index]).get(config.metric)
        out[str(value)] = {"rows": len(index), "challenger": a, "champion": b}
    return out


def load_for_scoring(project: Project, uri: str) -> tuple[Any, list[str]]:
    """A registered model as MLflow's pyfunc, and the input columns of its signature."""
    import mlflow.pyfunc

    project.tracker.activate()
    model = mlflow.pyfunc.load_model(uri)
    return model, model.metadata.get_input_schema().input_names()


def predict_scores(project: Project, uri: str, test: pd.DataFrame) -> np.ndarray:
    model, columns = load_for_scoring(project, uri)
    return positive_scores(model.predict(test[columns]))


def positive_scores(output: Any) -> np.ndarray:
    """Scores of the positive class (or the prediction itself) from any pyfunc output."""
    values = np.asarray(output.to_numpy() if hasattr(output, "to_numpy") else output, dtype=float)
    if values.ndim == 2:
        return values[:, -1]
    return values


_FRESH_PROCESS = """
import json, statistics, sys, time
import mlflow, numpy as np
from mlflow.models import Model
tracking, registry, uri = sys.argv[1:4]
mlflow.set_tracking_uri(tracking); mlflow.set_registry_uri(registry)
try:
    local = mlflow.artifacts.download_artifacts(uri)
    meta = Model.load(local)
    example = meta.load_input_example(local)
    if example is None:
        raise ValueError("the model was logged without an input example")
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(local)
    load_s = time.perf_counter() - started
    out = model.predict(example)
    times = []
    for _ in range(20):
        t = time.perf_counter(); model.predict(example); times.append(time.perf_counter() - t)
    values = np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out, dtype=float)
    problems = []
    if len(values) != len(example):
        problems.append(f"{len(values)} predictions for {len(example)} rows")
    if not np.isfinite(values).all():
        problems.append("predictions are not all finite")
    spec = meta.signature.outputs.inputs[0] if meta.signature and meta.signature.outputs else None
    shape = getattr(spec, "shape", None)
    if shape and len(shape) == values.ndim and any(
        a != -1 and a != b for a, b in zip(shape, values.shape)
    ):
        problems.append(f"output shape {values.shape} does not match the signature {shape}")
    print(json.dumps({"ok": not problems, "error": "; ".join(problems), "uri": uri,
                      "load_s": load_s, "median_ms": statistics.median(times) * 1000,
                      "rows": len(example)}))
except Exception as e:
    print(json.dumps({"ok": False, "uri": uri, "error": f"{type(e).__name__}: {e}"}))
"""


def check_in_fresh_process(project: Project, uri: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """Load `uri` from the registry in a new Python process, as a server would, and time
    its prediction of the input example it was logged with."""
    s = project.settings
    try:
        done = subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS, s.tracking_uri, s.registry_uri, uri],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "uri": uri, "error": f"did not load and predict in {timeout_s:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"ok": False, "uri": uri, "error": done.stderr.strip()[-500:] or "no output"}
    return json.loads(lines[-1])
