"""SIGKILL of `esteira run` at 24 points of a pipeline shaped like the reference one (a
batch validated and landed in the lake, features read back, split, train, evaluate,
register, promote): at each step's start and after each step's record, mid artifact write,
around a Delta append, between MLflow's registration and esteira's record, and on both
sides of the champion's alias move. After each kill a plain rerun must complete, and:

- every lake table reads, and no artifact on record differs from its hash;
- the killed run is closed as failed, and nothing is left "running";
- the steps recorded complete before the kill are reused, not run again;
- MLflow's champion is the one the alias history ends with, no move is left half-done,
  and a version registered but never recorded is orphaned, never champion.

And 22 kills at successive moments of a promotion that replaces a champion: the champion
is always the old or the new version, and the rerun ends with a whole history.

The kill is real: the run is a child process whose functions at that point call
`os.kill(os.getpid(), SIGKILL)` (patched in by `KILLER`, not by hooks in esteira).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import _env

from esteira import load_project
from esteira.artifacts import _hash_path
from esteira.pipelines.runner import run_pipeline
from esteira.registry import CHAMPION, ORPHANED_TAG, Registry

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from esteira import pipeline, step
from esteira.steps import promote


@step
def ingest(ctx, batch: str = "2024-01"):
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"batch": batch, "x1": rng.normal(size=600), "x2": rng.normal(size=600)})
    rows["label"] = (rows.x1 + 0.5 * rows.x2 + rng.normal(0, 0.5, 600) > 0).astype(int)
    ctx.validate_batch(rows, "events", batch)
    return {"version": ctx.replace_table("events", rows, where=f"batch = '{batch}'")}


@step
def features(ctx, ingest):
    return ctx.read_table("events")


@step(outputs=("train_set", "test_set"))
def split(features):
    return features.iloc[:400], features.iloc[400:]


@step(outputs="model")
def train(train_set):
    return LogisticRegression().fit(train_set[["x1", "x2"]], train_set.label)


@step
def evaluate(model, test_set):
    return {"accuracy": float(model.score(test_set[["x1", "x2"]], test_set.label))}


@step(outputs="registered")
def register(ctx, model, test_set, evaluate):
    m = ctx.log_model(model, test_set[["x1", "x2"]].head(3), register_as="toy",
                      predict_fn="predict_proba", alias="challenger")
    return {"name": m.name, "version": m.version}


flow = pipeline("flow", [ingest, features, split, train, evaluate, register, promote])
"""
STEPS = ["ingest", "features", "split", "train", "evaluate", "register", "promote"]
TOML = """
[gates]
check_compatibility = false
[ct]
label = "label"
"""

KILLER = """
import os, signal, sys
from functools import wraps

target, attribute, nth, when = sys.argv[1:5]
calls = 0

def killing(original):
    @wraps(original)
    def wrapper(*args, **kwargs):
        global calls
        if attribute == "set_registered_model_alias" and args[2] != "champion":
            return original(*args, **kwargs)
        calls += 1
        if when == "before" and calls == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if when == "after" and calls == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper

module_name, _, owner = target.partition(":")
module = __import__(module_name, fromlist=["_"])
holder = getattr(module, owner) if owner else module
setattr(holder, attribute, killing(getattr(holder, attribute)))
sys.argv = ["esteira", *sys.argv[5:]]
from esteira.cli import main
main()
"""

PROMOTION_KILLER = """
import functools, os, signal, sys
from contextlib import contextmanager

import mlflow
from esteira import metadata
from esteira.pipelines import runner

nth = int(sys.argv[1])
seen = {"promoting": False, "events": 0}

def event():
    if seen["promoting"]:
        seen["events"] += 1
        if seen["events"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

context = runner._RunState.context
def promoting(self, step_run):
    seen["promoting"] = step_run.step == "promote"
    return context(self, step_run)
runner._RunState.context = promoting

session = metadata.MetadataStore.session
@contextmanager
def counted_session(self):
    with session(self) as s:
        yield s
    event()
metadata.MetadataStore.session = counted_session

def counted(f):
    @functools.wraps(f)
    def call(*args, **kwargs):
        result = f(*args, **kwargs)
        event()
        return result
    return call
for name in dir(mlflow.MlflowClient):
    if not name.startswith("_") and callable(getattr(mlflow.MlflowClient, name)):
        setattr(mlflow.MlflowClient, name, counted(getattr(mlflow.MlflowClient, name)))

sys.argv = ["esteira", *sys.argv[2:]]
from esteira.cli import main
main()
"""
PROMOTION_EVENTS = 22
"""Kill points in a promotion: after each of its first 22 metadata transactions and MLflow
calls (it makes about 36 when it replaces a champion)."""

RUN_STATE = "esteira.pipelines.runner:_RunState"
POINTS = {
    **{f"start of {s}": (RUN_STATE, "context", i + 1, "after") for i, s in enumerate(STEPS)},
    **{f"{s} recorded": (RUN_STATE, "close_step", i + 1, "after") for i, s in enumerate(STEPS)},
    "mid artifact write (written, not renamed)": ("esteira.artifacts", "_publish", 1, "before"),
    "before the Delta append": ("esteira.lake:Lake", "_write", 1, "before"),
    "after the Delta append, before its record": ("esteira.lake:Lake", "_write", 1, "after"),
    "validation report written, batch not landed": (
        "esteira.artifacts:ArtifactStore", "save", 1, "after"),
    "registered in MLflow, not recorded": ("mlflow", "register_model", 1, "after"),
    "champion intent recorded, alias not moved": (
        "mlflow:MlflowClient", "set_registered_model_alias", 1, "before"),
    "alias moved, history not recorded": (
        "mlflow:MlflowClient", "set_registered_model_alias", 1, "after"),
    "before the challenger's alias intent": (
        "esteira.registry:Registry", "_write_ahead", 1, "before"),
}  # fmt: skip


def test_the_suite_has_at_least_twenty_points():
    assert len(POINTS) >= 20


@pytest.fixture(scope="module")
def killer(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("killer") / "killer.py"
    path.write_text(KILLER)
    return path


@pytest.mark.integration  # about 5 s a point
@pytest.mark.parametrize("point", list(POINTS))
def test_a_kill_at_any_point_leaves_a_consistent_store_and_a_rerun_completes(
    point, killer, write_project
):
    root = write_project(PIPELINE, toml=TOML)
    target, attribute, nth, when = POINTS[point]
    killed = subprocess.run(
        [sys.executable, str(killer), target, attribute, str(nth), when, "run", "flow", "-p",
         str(root)],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, f"not killed at {point}: {killed.stdout}{killed.stderr}"
    project = load_project(root)
    (dead,) = [project.metadata.run(r.id) for r in project.metadata.runs()]
    done_before = {s.step for s in dead.steps if s.status == "completed"}

    rerun = run_pipeline(project, "flow")
    assert rerun.status == "completed"
    assert {s for s, status in rerun.step_status.items() if status == "cached"} >= done_before
    closed = project.metadata.run(dead.id)
    assert closed.status == "failed" and "died" in closed.error
    runs = [project.metadata.run(r.id) for r in project.metadata.runs()]
    for run in runs:
        assert run.status != "running" and all(s.status != "running" for s in run.steps)
        for step in run.steps:
            for io in step.io:
                assert _hash_path(Path(io.uri.removeprefix("file://")))[0] == io.hash, io.uri
    for table in project.lake.tables():
        project.lake.read(table)
    _check_the_registry(project, runs)


@pytest.fixture(scope="module")
def with_a_champion(tmp_path_factory) -> Path:
    """The pipeline run once: version 1 is champion; the next batch makes a version 2 that
    replaces it."""
    root = tmp_path_factory.mktemp("promotion") / "proj"
    root.mkdir()
    (root / "pipelines.py").write_text(PIPELINE)
    (root / "esteira.toml").write_text(TOML)
    run_pipeline(load_project(root), "flow")
    return root


@pytest.mark.integration  # about 6 s a point
@pytest.mark.parametrize("nth", range(1, PROMOTION_EVENTS + 1))
def test_a_kill_at_any_moment_of_a_promotion_leaves_one_champion_and_a_whole_history(
    nth, with_a_champion, tmp_path
):
    root = tmp_path / "proj"
    shutil.copytree(with_a_champion, root)
    killer = tmp_path / "killer.py"
    killer.write_text(PROMOTION_KILLER)
    killed = subprocess.run(
        [sys.executable, str(killer), str(nth), "run", "flow", "-p", str(root), "--param",
         "batch=2024-02"],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, f"not killed at event {nth}: {killed.stdout}{killed.stderr}"
    project = load_project(root)
    registry = Registry(project)
    assert registry.by_alias("toy", CHAMPION).version in ("1", "2")  # the old or the new

    rerun = run_pipeline(project, "flow", {"batch": "2024-02"})
    assert rerun.status == "completed" and rerun.output("decision")["passed"]
    assert registry.by_alias("toy", CHAMPION).version == "2"
    moves = [(c.from_version, c.to_version) for c in registry.history("toy", CHAMPION)]
    assert moves == [(None, "1"), ("1", "2")], moves  # whole, and nothing twice
    assert project.metadata.alias_intents("toy") == []
    runs = [project.metadata.run(r.id) for r in project.metadata.runs()]
    assert all(r.status != "running" for r in runs)
    _check_the_registry(project, runs)


def _check_the_registry(project, runs) -> None:
    registry = Registry(project)
    champion = registry.by_alias("toy", CHAMPION)
    assert champion is not None
    history = registry.history("toy", CHAMPION)
    assert history and history[-1].to_version == champion.version
    assert project.metadata.alias_intents("toy") == []
    assert ORPHANED_TAG not in champion.tags
    for version in registry.versions("toy", with_metrics=False):
        recorded = any(
            m.name == "toy" and m.version == version.version
            for run in runs
            for step in run.steps
            for m in step.models
        )
        assert recorded or ORPHANED_TAG in version.tags, f"v{version.version} unrecorded"
