"""Continuous training: triggers, the controller's lock, SIGTERM and resume."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_cli import ESTEIRA, _env
from test_gates import GATES
from test_gates import PIPELINE as GATED

from esteira.ct.controller import Busy, Controller, ct_lock
from esteira.ct.triggers import CTState, drift, new_data, no_champion, performance, schedule
from esteira.metadata import MonitoringRecord
from esteira.project import load_project, open_project


def state(**changes) -> CTState:
    base = {
        "model": "m",
        "now": datetime(2013, 7, 1),
        "champion": "1",
        "last_training_at": datetime(2013, 4, 1),
        "trained_batch": "2013-03",
        "newest_batch": "2013-03",
        "monitoring": None,
    }
    return CTState(**(base | changes))


def monitoring(share: float = 0.0, **metrics: float) -> MonitoringRecord:
    drifted = {
        "temp": {"test": "wasserstein", "value": 3.2, "threshold": 0.1, "drifted": share > 0}
    }
    return MonitoringRecord(model="m", version="1", batch="2013-06", rows=10,
                            drift_share=share, drifted=drifted, metrics=metrics)  # fmt: skip


def test_triggers_say_why_they_fire():
    assert no_champion(state(champion=None)).trigger == "bootstrap"
    assert no_champion(state()) is None

    quarterly = schedule("0 0 1 */3 *")
    fire = quarterly(state())
    assert fire and "was due 2013-07-01 00:00; last training 2013-04-01" in fire.reason
    assert quarterly(state(last_training_at=datetime(2013, 7, 1))) is None
    with pytest.raises(Exception, match="not a valid cron"):
        schedule("every monday")

    assert new_data(state()) is None
    assert "2013-04 is newer than 2013-03" in new_data(state(newest_batch="2013-04")).reason

    assert drift(0.25)(state(monitoring=monitoring(0.1))) is None
    assert "30% of features drifted in batch 2013-06 (limit 25%): temp (wasserstein 3.2)" in (
        drift(0.25)(state(monitoring=monitoring(0.3))).reason
    )


def test_performance_trigger_knows_each_metric_direction():
    low_auc = state(monitoring=monitoring(roc_auc=0.61))
    assert "roc_auc 0.6100 of v1 on batch 2013-06 is below 0.65" in (
        performance("roc_auc", 0.65)(low_auc).reason
    )
    assert performance("roc_auc", 0.6)(low_auc) is None
    high_loss = state(monitoring=monitoring(log_loss=0.7))
    assert "is above 0.6" in performance("log_loss", 0.6)(high_loss).reason
    assert performance("log_loss", 0.8)(high_loss) is None
    assert performance("roc_auc", 0.65)(state()) is None  # nothing monitored yet


CT = (
    GATES
    + """
[ct]
model = "toy"
pipeline = "flow"
label = "label"
"""
)

SLOW = GATED.replace(
    "def train(train_set):\n",
    "def train(train_set):\n"
    "    import time\n"
    "    from pathlib import Path\n"
    "    (Path(__file__).parent / 'training').touch()\n"
    "    while (Path(__file__).parent / 'slow').exists():\n"
    "        time.sleep(0.1)\n",
)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_two_triggers_at_once_start_exactly_one_run(write_project):
    root = write_project(SLOW, toml=CT)
    (root / "slow").touch()
    trigger = [*ESTEIRA, "ct", "trigger", "-p", str(root), "--reason"]
    first = subprocess.Popen([*trigger, "first"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    wait_for(root / "training", first)
    second = subprocess.run([*trigger, "second"], capture_output=True, text=True,
                            env=_env(), timeout=120)  # fmt: skip
    assert second.returncode == 1
    assert "a CT run of 'toy' is already in progress" in second.stderr
    (root / "slow").unlink()
    assert first.wait(timeout=180) == 0, first.communicate()
    runs = open_project(root).metadata.ct_runs("toy")
    assert [(r.trigger, r.reason, r.status) for r in runs] == [
        ("on_demand", "on_demand: first", "completed")
    ]
    assert runs[0].champion_after == "1"


def test_lock_is_exclusive_within_a_process_too(write_project):
    project = load_project(write_project(GATED, toml=CT))
    with ct_lock(project, "toy"), pytest.raises(Busy), ct_lock(project, "toy"):
        pass
    with ct_lock(project, "toy"):  # released again
        pass


def test_sigterm_mid_run_leaves_consistent_state_and_the_next_start_resumes(write_project):
    root = write_project(SLOW, toml=CT)
    (root / "slow").touch()
    start = [*ESTEIRA, "ct", "start", "-p", str(root), "--interval", "0.2"]
    controller = subprocess.Popen(start, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=_env())  # fmt: skip
    wait_for(root / "training", controller)
    controller.send_signal(signal.SIGTERM)
    assert controller.wait(timeout=60) == 130, controller.communicate()

    meta = open_project(root).metadata
    (interrupted,) = meta.ct_runs("toy")
    assert interrupted.status == "interrupted" and interrupted.trigger == "bootstrap"
    run = meta.run(interrupted.pipeline_run_id or meta.runs()[0].id)
    assert run.status == "failed" and "interrupted" in run.error
    with ct_lock(open_project(root), "toy"):  # the lock went with the process
        pass

    (root / "slow").unlink()
    resumed = Controller(load_project(root), log=lambda m: None).tick()
    assert resumed.trigger == "resume" and resumed.status == "completed"
    assert resumed.champion_after == "1"
    statuses = {s.step: s.status for s in meta.run(resumed.pipeline_run_id).steps}
    assert statuses["data"] == "cached"  # completed work was kept
    assert Controller(load_project(root), log=lambda m: None).tick() is None  # nothing fires
