"""Built-in steps: `esteira.steps.promote` takes a project to a champion with no gate code."""

from __future__ import annotations

import pytest

from esteira import load_project, pipeline, step
from esteira.errors import ConfigError, PipelineDefinitionError, StepFailed
from esteira.pipelines.runner import run_pipeline
from esteira.registry import CHALLENGER, CHAMPION, Registry
from esteira.steps import promote

# No [gates] and no [ct]: the gates' defaults and the label column "label" apply.
PIPELINE = '''
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from esteira import pipeline, step
from esteira.steps import promote


def rows(seed, n, flipped):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = (df.x1 + 0.5 * df.x2 > 0).astype(int)
    df["label"] = np.where(rng.random(n) < flipped, 1 - y, y)
    return df


@step(outputs=("train_set", "test_set"))
def data(seed: int = 0, flipped: float = 0.05):
    """`flipped`: share of training labels inverted; the test rows are the same every run."""
    return rows(seed, 2000, flipped), rows(1000, 2000, 0.05)


@step(outputs="model")
def train(train_set):
    return LogisticRegression().fit(train_set[["x1", "x2"]], train_set.label)


@step(outputs="registered")
def register(ctx, model, test_set):
    m = ctx.log_model(model, test_set[["x1", "x2"]].head(3), register_as="toy",
                      predict_fn="predict_proba", alias="challenger")
    return {"name": m.name, "version": m.version}


@step(name="register_nothing", outputs="registered")
def register_nothing():
    return {"version": "1"}


flow = pipeline("flow", [data, train, register, promote])
unnamed = pipeline("unnamed", [data, register_nothing, promote])
'''


def version(project, alias: str) -> str | None:
    found = Registry(project).by_alias("toy", alias)
    return found.version if found else None


def test_promote_makes_a_champion_and_keeps_a_worse_challenger_out(write_project):
    project = load_project(write_project(PIPELINE))
    first = run_pipeline(project, "flow").output("decision")
    assert first["passed"], first
    assert version(project, CHAMPION) == "1"

    worse = run_pipeline(project, "flow", {"seed": 1, "flipped": 0.9}).output("decision")
    assert not worse["passed"]
    (versus,) = [c for c in worse["checks"] if c["name"] == "versus_champion"]
    assert not versus["passed"] and "worse by" in versus["reason"]
    assert (version(project, CHAMPION), version(project, CHALLENGER)) == ("1", "2")
    assert [(d.version, d.passed) for d in project.metadata.gate_decisions("toy")] == [
        ("2", False),
        ("1", True),
    ]

    # The same run again is a cache hit; loosening [gates] judges version 2 anew.
    again = run_pipeline(project, "flow", {"seed": 1, "flipped": 0.9})
    assert again.step_status["promote"] == "cached"
    root = project.root
    (root / "esteira.toml").write_text("[gates]\ntolerance = 1.0\n")
    looser = run_pipeline(load_project(root), "flow", {"seed": 1, "flipped": 0.9})
    assert looser.step_status["promote"] == "completed"
    assert looser.output("decision")["passed"] and version(project, CHAMPION) == "2"


def test_promote_says_which_outputs_it_needs():
    @step(outputs="model")
    def train() -> int:
        return 1

    with pytest.raises(PipelineDefinitionError) as e:
        pipeline("p", [train, promote])
    assert "'registered' of step 'promote'" in str(e.value)
    assert "'test_set' of step 'promote'" in str(e.value)


def test_promote_refuses_a_version_without_a_name_and_a_missing_label(write_project):
    project = load_project(write_project(PIPELINE))
    with pytest.raises(StepFailed) as e:
        run_pipeline(project, "unnamed")
    assert isinstance(e.value.error, PipelineDefinitionError)
    assert "needs output 'registered' to name the new version" in str(e.value)

    with pytest.raises(StepFailed) as e:
        run_pipeline(project, "flow", {"label": "outcome"})
    assert isinstance(e.value.error, ConfigError)
    assert "test_set has no label column 'outcome'; set [ct] label" in str(e.value)


def test_two_runs_at_once_are_each_judged_against_the_champion_they_replace(write_project):
    import subprocess

    from test_cli import ESTEIRA, _env

    root = write_project(PIPELINE)
    project = load_project(root)
    run_pipeline(project, "flow", {"flipped": 0.45})  # a poor champion: all three beat it
    runs = [
        subprocess.Popen([*ESTEIRA, "run", "flow", "-p", str(root), "--param", f"seed={seed}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for seed in (1, 2, 3)
    ]  # fmt: skip
    for run in runs:
        assert run.wait(timeout=300) in (0, 1), run.communicate()
    registry = Registry(load_project(root))
    judged = {d.version: d for d in project.metadata.gate_decisions("toy", limit=10)}
    for change in registry.history("toy", CHAMPION)[1:]:
        # the champion this version was judged against is the one it replaced
        found = judged[change.to_version].champion_version
        assert found == change.from_version, f"v{change.to_version} judged against v{found}"
