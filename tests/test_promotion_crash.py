"""Promotion is write-ahead: a kill on either side of MLflow's alias move leaves the old or
the new champion with a complete history, and a rerun finishes the promotion instead of
judging the version again. The kill is a BaseException raised around the move (as a
SIGKILL, it skips everything after it; the records were written before it)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from test_steps import PIPELINE

from esteira import load_project
from esteira.pipelines.runner import run_pipeline
from esteira.registry import CHAMPION, Registry


class Killed(BaseException):
    """What a SIGKILL does to the code after it: nothing of it runs."""


@pytest.fixture
def project(write_project):
    project = load_project(write_project(PIPELINE))
    run_pipeline(project, "flow", {"flipped": 0.45})  # a poor first champion: v1
    return project


def kill_at_the_alias_move(monkeypatch, after_moving: bool) -> None:
    move = MlflowClient.set_registered_model_alias

    def killed(self, name, alias, version):
        if alias == CHAMPION:
            if after_moving:
                move(self, name, alias, version)
            raise Killed
        move(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", killed)


def killed_at_the_flip(project, monkeypatch, after_moving: bool) -> Registry:
    """Run the pipeline for a better version, killed on one side of the champion's move."""
    kill_at_the_alias_move(monkeypatch, after_moving)
    with pytest.raises(Killed):
        run_pipeline(project, "flow", {"seed": 1})
    monkeypatch.undo()
    return Registry(project)


def moves(project) -> list[tuple[str | None, str]]:
    return [(c.from_version, c.to_version) for c in Registry(project).history("toy")]


def test_a_kill_before_the_alias_moves_leaves_the_old_champion(project, monkeypatch):
    registry = killed_at_the_flip(project, monkeypatch, after_moving=False)
    assert registry.by_alias("toy").version == "1"
    assert registry.settle("toy") == []  # the move never happened: dropped
    assert project.metadata.alias_intents("toy") == []
    assert moves(project) == [(None, "1")]


def test_a_kill_after_the_alias_moved_is_recorded_and_the_rerun_finishes(project, monkeypatch):
    registry = killed_at_the_flip(project, monkeypatch, after_moving=True)
    assert registry.by_alias("toy").version == "2"  # MLflow moved; the history not yet
    decisions = len(project.metadata.gate_decisions("toy"))

    rerun = run_pipeline(project, "flow", {"seed": 1})  # resumes at the promote step
    assert rerun.step_status["register"] == "cached"
    assert rerun.step_status["promote"] == "completed", rerun.step_status
    assert rerun.output("decision")["passed"] is True
    assert len(project.metadata.gate_decisions("toy")) == decisions  # not judged again
    assert moves(project) == [(None, "1"), ("1", "2")]
    last = registry.history("toy")[-1]
    assert "completed after the process that moved it was interrupted" in last.reason
    assert project.metadata.alias_intents("toy") == []
    registry.rollback("toy", reason="the history is whole: back to v1")
    assert registry.by_alias("toy").version == "1"


def test_a_hand_promotion_cut_short_is_settled_by_the_next_change(project, monkeypatch):
    run_pipeline(project, "flow", {"seed": 1})
    registry = Registry(project)
    assert registry.by_alias("toy").version == "2"
    kill_at_the_alias_move(monkeypatch, after_moving=True)
    with pytest.raises(Killed):
        registry.rollback("toy", reason="v2 misbehaves")
    monkeypatch.undo()
    registry.promote("toy", "2", reason="it was fine after all")  # settles the rollback first
    assert moves(project) == [(None, "1"), ("1", "2"), ("2", "1"), ("1", "2")]


KILLED_AFTER_REGISTERING = PIPELINE.replace(
    """                      predict_fn="predict_proba", alias="challenger")
""",
    """                      predict_fn="predict_proba")
    import time
    from pathlib import Path

    here = Path(__file__).parent
    (here / "registered").touch()
    while (here / "hold").exists():  # killed here: MLflow has the version, esteira not
        time.sleep(0.05)
""",
)


def test_a_version_whose_run_died_before_recording_it_is_orphaned_never_promoted(write_project):
    import subprocess
    import time

    from test_cli import ESTEIRA, _env

    from esteira.registry import ORPHANED_TAG, PromotionError

    assert KILLED_AFTER_REGISTERING != PIPELINE
    root = write_project(KILLED_AFTER_REGISTERING)
    (root / "hold").touch()
    run = subprocess.Popen([*ESTEIRA, "run", "flow", "-p", str(root)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    deadline = time.monotonic() + 180
    while not (root / "registered").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    run.kill()
    run.wait(timeout=30)
    (root / "hold").unlink()

    project = load_project(root)
    again = run_pipeline(project, "flow")  # closes the dead run, then registers v2
    registry = Registry(project)
    orphan = registry.version("toy", "1", with_metrics=False)
    assert "whose process died before recording it" in orphan.tags[ORPHANED_TAG]
    assert registry.by_alias("toy").version == "2"
    assert again.output("registered")["version"] == "2"
    with pytest.raises(PromotionError, match="version 1 of 'toy' is orphaned"):
        registry.promote("toy", "1", reason="by accident")
