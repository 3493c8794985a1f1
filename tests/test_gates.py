"""Registry aliases, promotion through the gates, and rollback, on a small real model."""

from __future__ import annotations

import pytest

from esteira import load_project
from esteira.errors import NotFound
from esteira.pipelines.runner import run_pipeline
from esteira.registry import CHALLENGER, CHAMPION, PromotionError, Registry

PIPELINE = '''
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from esteira import pipeline, step


def make(seed, n, noise_a, noise_b):
    """Two segments in different regions (B has x2 shifted); labels are flipped with
    probability noise_* in each (above 0.5, the segment's relation is inverted)."""
    rng = np.random.default_rng(seed)
    seg = rng.choice(["A", "B"], n)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n) + 4 * (seg == "B"),
                       "seg": seg})
    y = (df.x1 + 0.5 * (df.x2 - 4 * (seg == "B")) > 0).astype(int)
    noise = np.where(df.seg == "A", noise_a, noise_b)
    flip = rng.random(n) < noise
    df["label"] = np.where(flip, 1 - y, y)
    return df


@step(outputs=("train_set", "test_set"))
def data(seed: int = 0, noise_a: float = 0.05, noise_b: float = 0.05):
    clean = make(1000 + seed, 4000, 0.05, 0.05)  # the newest flights: same for every run
    return make(seed, 3000, noise_a, noise_b), clean


@step(outputs="model")
def train(train_set):
    return HistGradientBoostingClassifier(max_iter=30).fit(train_set[["x1", "x2"]], train_set.label)


@step
def register(ctx, model, test_set):
    m = ctx.log_model(model, test_set[["x1", "x2"]].head(3), register_as="toy",
                      predict_fn="predict_proba", alias="challenger")
    return {"version": m.version}


@step
def gate(ctx, register, test_set):
    decision = ctx.validate_model("toy", register["version"], test_set, label="label")
    if decision.passed:
        ctx.promote("toy", register["version"], reason=decision.summary())
    return decision.to_dict()


flow = pipeline("flow", [data, train, register, gate])
'''

GATES = """
[gates]
metric = "roc_auc"
tolerance = 0.01
thresholds = { roc_auc = 0.7 }
segment = "seg"
segment_tolerance = 0.03
min_segment_rows = 100
check_compatibility = false
"""


@pytest.fixture
def project(write_project):
    return load_project(write_project(PIPELINE, toml=GATES))


def champion(project) -> str | None:
    found = Registry(project).by_alias("toy", CHAMPION)
    return found.version if found else None


def test_worse_challenger_is_kept_out_better_one_promoted_rollback_restores(project):
    first = run_pipeline(project, "flow").output("gate")
    assert first["passed"] and champion(project) == "1"
    assert "no champion yet" in first["checks"][1]["reason"]

    worse = run_pipeline(project, "flow", {"seed": 1, "noise_a": 0.4, "noise_b": 0.4}).output(
        "gate"
    )
    assert not worse["passed"] and champion(project) == "1"
    (versus,) = [c for c in worse["checks"] if c["name"] == "versus_champion"]
    assert not versus["passed"] and "worse by" in versus["reason"]
    assert versus["figures"]["champion"] > versus["figures"]["challenger"]
    assert Registry(project).by_alias("toy", CHALLENGER).version == "2"
    alert = project.metadata.alerts("gate")[0]
    assert alert.subject == "toy/2"
    stored = project.metadata.gate_decisions("toy")
    assert [(d.version, d.passed) for d in stored] == [("2", False), ("1", True)]

    better = run_pipeline(project, "flow", {"seed": 2, "noise_a": 0.0, "noise_b": 0.0}).output(
        "gate"
    )
    assert better["passed"] and champion(project) == "3"

    registry = Registry(project)
    change = registry.rollback("toy", reason="the newer one misbehaves in production")
    assert (change.from_version, change.to_version) == ("3", "1")
    assert champion(project) == "1"
    history = registry.history("toy")
    assert [(c.action, c.to_version) for c in history] == [
        ("promote", "1"),
        ("promote", "3"),
        ("rollback", "1"),
    ]
    assert history[0].pipeline_run_id and "@" in history[-1].actor
    assert history[-1].reason == "the newer one misbehaves in production"
    with pytest.raises(PromotionError, match="no earlier version"):
        registry.rollback("toy", reason="again")


def test_a_challenger_worse_in_one_segment_is_not_promoted(project):
    run_pipeline(project, "flow")
    result = run_pipeline(project, "flow", {"seed": 3, "noise_a": 0.0, "noise_b": 0.8}).output(
        "gate"
    )
    checks = {c["name"]: c for c in result["checks"]}
    assert not checks["segments"]["passed"], checks
    assert "in B (" in checks["segments"]["reason"]
    assert champion(project) == "1"


def test_registry_errors_name_what_exists(project):
    run_pipeline(project, "flow")
    registry = Registry(project)
    with pytest.raises(NotFound, match=r"no registered model 'nope' \(models: toy\)"):
        registry.versions("nope")
    with pytest.raises(NotFound, match=r"has no version 9 \(versions: 1\)"):
        registry.promote("toy", "9", reason="x")
    with pytest.raises(PromotionError, match="already champion"):
        registry.promote("toy", "1", reason="x")
    with pytest.raises(PromotionError, match="say why"):
        registry.promote("toy", "1", reason=" ", alias="staging")
    versions = registry.versions("toy")
    assert versions[0].aliases == ["challenger", "champion"]
    assert versions[0].tags["esteira.pipeline_run_id"]


def test_compatibility_is_checked_in_a_fresh_process(write_project):
    toml = GATES.replace("check_compatibility = false", "latency_budget_ms = 0.0001")
    project = load_project(write_project(PIPELINE, toml=toml))
    result = run_pipeline(project, "flow").output("gate")
    (check,) = [c for c in result["checks"] if c["name"] == "compatibility"]
    assert not check["passed"] and "over the 0.0001 ms budget" in check["reason"]
    assert check["figures"]["ok"] and check["figures"]["rows"] == 3
    assert champion(project) is None


def test_the_fresh_process_loads_at_once_and_times_its_calls_when_told(project, monkeypatch):
    """The gates start the fresh process before they score the test data: it loads the
    model meanwhile, then waits, and predicts and times its calls only once asked for its
    result, so the scoring cannot slow a timed call; one not asked for is stopped."""
    from esteira.validation import compatibility

    run_pipeline(project, "flow")
    s, uri = project.settings, "models:/toy/1"
    done = []
    monkeypatch.setattr(compatibility, "time_calls", lambda call: done.append("timed") or [0.01])
    project.tracker.activate()
    found = compatibility.probe(uri, 1, loaded=lambda: done.append("loaded"))
    assert found["ok"] and done == ["loaded", "timed"]

    fresh = compatibility.FreshProbe(s.tracking_uri, s.registry_uri, uri, 1)
    found = fresh.result()
    assert found["ok"] and found["calls"] >= compatibility.MIN_CALLS and found["load_s"] > 0
    unused = compatibility.FreshProbe(s.tracking_uri, s.registry_uri, uri, 1)
    unused.cancel()
    assert unused._process.returncode is not None


def test_the_tolerance_is_one_budget_for_a_chain_of_slightly_worse_champions():
    """Each challenger a little worse than the champion before it: the first two fit in the
    tolerance together, the third would take the chain beyond it and is refused; a better
    one earns the budget back."""
    from esteira.config import GatesConfig
    from esteira.validation.decision import Evidence
    from esteira.validation.model import champion_gate

    config = GatesConfig(tolerance=0.005)

    def judged(ours: float, theirs: float, spent: float):
        e = Evidence("m", "2", "1", 100, "binary", "roc_auc", {"roc_auc": ours},
                     {"roc_auc": theirs}, tolerance_spent=spent)  # fmt: skip
        return champion_gate(e, config)

    first = judged(0.7603, 0.7633, spent=0.0)  # 0.003 worse: within
    spent = first.figures["tolerance_spent"]
    assert first.passed and spent == pytest.approx(0.003)
    second = judged(0.7588, 0.7603, spent=spent)  # 0.0015 more: 0.0045 in all, within
    spent = second.figures["tolerance_spent"]
    assert second.passed and spent == pytest.approx(0.0045)
    third = judged(0.7578, 0.7588, spent=spent)  # 0.001 more would be 0.0055
    assert not third.passed
    assert "of which v1 and those it replaced within it took 0.0045" in third.reason
    better = judged(0.7600, 0.7588, spent=spent)
    assert better.passed and better.figures["tolerance_spent"] == pytest.approx(0.0033)
