"""Continuous training: triggers, the controller's lock, SIGTERM and resume."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from test_cli import ESTEIRA, _env
from test_gates import GATES
from test_gates import PIPELINE as GATED

from esteira.batches import BatchLabelError
from esteira.ct.controller import Busy, Controller, ct_lock
from esteira.ct.triggers import (
    CTState,
    Fire,
    drift,
    new_data,
    no_champion,
    performance,
    schedule,
)
from esteira.metadata import CTRun, MonitoringRecord
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


# A tiny project whose batches are integers or days: each batch is 300 rows drawn from its
# label; from the batches `shifted` names on, the inputs move and x1 turns against the label.
BATCHED = """
import zlib

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from esteira import pipeline, step

{periods}


def make(batch):
    rng = np.random.default_rng(zlib.crc32(str(batch).encode()))
    shift, x1_weight = (3.0, -1.0) if shifted(batch) else (0.0, 1.0)
    x1, x2 = rng.normal(shift, 1, 300), rng.normal(shift, 1, 300)
    score = x1_weight * (x1 - shift) + 0.5 * (x2 - shift) + rng.normal(0, 0.5, 300)
    label = (score > 0).astype(int)
    return pd.DataFrame({{"batch": batch, "x1": x1, "x2": x2, "label": label}})


@step
def features(end=END, batches: int = 2):
    return pd.concat([make(b) for b in window(end, batches)], ignore_index=True)


@step(outputs=("model", "train_set"))
def train(features):
    return LogisticRegression().fit(features[["x1", "x2"]], features.label), features


@step
def register(ctx, model, train_set):
    m = ctx.log_model(model, train_set[["x1", "x2"]].head(3), register_as="toy",
                      predict_fn="predict_proba")
    ctx.promote("toy", m.version, reason="trained")
    return m.version


flow = pipeline("flow", [features, train, register])
"""

INTEGERS = """
END = 6


def window(end, n):
    return range(end - n + 1, end + 1)


def shifted(batch):
    return batch >= 9
"""

DAYS = """
END = "2024-01-04"


def window(end, n):
    return [f"{day:%Y-%m-%d}" for day in pd.date_range(end=end, periods=n)]


def shifted(batch):
    return batch >= "2024-01-08"
"""

BATCHED_CT = """
[ct]
model = "toy"
pipeline = "flow"
batch_param = "end"
batch_only_params = { batches = 1 }
data_output = "features"
reference_output = "train_set"
label = "label"
metric = "roc_auc"

[ct.triggers]
drift_share = 0.5
cron = "0 0 * * 1"   # Mondays at midnight
"""


def trained_on(root: Path, policy: str) -> list:
    """The batch parameter of each CT run of a replayed policy, oldest first."""
    home = root / ".esteira" / "replay" / policy
    project = load_project(root, environ={"ESTEIRA_HOME": str(home)})
    runs = reversed(project.metadata.ct_runs("toy"))
    return [project.metadata.run(r.pipeline_run_id).params["end"] for r in runs]


def test_replay_takes_integer_batches_in_numeric_order(write_project):
    from esteira.ct.replay import replay

    root = write_project(BATCHED.format(periods=INTEGERS), toml=BATCHED_CT)
    never, drifting = replay(root, ["10", "8", "9", "7"], ["never", "drift"])
    assert [r.batch for r in never.rows] == ["7", "8", "9", "10"]  # 10 comes after 9
    assert never.retrains == 0 and {r.champion for r in never.rows} == {"1"}
    assert never.rows[1].drift_share == 0 and never.rows[2].drift_share == 1
    assert never.rows[2].metric < 0.8 < never.rows[1].metric  # the shift hurts the old model
    first = next(r for r in drifting.rows if r.retrained)
    assert first.batch == "9" and first.reason.startswith("drift: 100% of features drifted")
    # Typed like the pipeline's default: the bootstrap trained up to 6, the next run up to 9.
    assert trained_on(root, "drift")[:2] == [6, 9]
    assert drifting.rows[-1].champion != "1" and drifting.rows[-1].metric > 0.9


def test_the_monthly_policy_retrains_on_every_new_batch(write_project):
    """The upper reference: every batch trains a challenger, whatever drift or the
    calendar say, and each run trains up to the batch it follows."""
    from esteira.ct.replay import POLICIES, replay

    assert "monthly" in POLICIES
    root = write_project(BATCHED.format(periods=INTEGERS), toml=BATCHED_CT)
    (monthly,) = replay(root, ["7", "8", "9"], ["monthly"])
    assert monthly.retrains == 3
    assert all(r.reason.startswith("new_data: batch") for r in monthly.rows)
    assert trained_on(root, "monthly") == [6, 7, 8, 9]
    assert [(r.champion, r.champion_after) for r in monthly.rows] == [
        ("1", "2"),
        ("2", "3"),
        ("3", "4"),
    ]


def test_replay_takes_daily_batches_and_a_weekly_schedule(write_project):
    from esteira.ct.replay import replay

    root = write_project(BATCHED.format(periods=DAYS), toml=BATCHED_CT)
    days = ["2024-01-05", "2024-01-06", "2024-01-07", "2024-01-08"]
    never, weekly = replay(root, days, ["never", "schedule"])
    assert [r.batch for r in never.rows] == days and never.retrains == 0
    # Sunday's batch ends at Monday midnight, when the cron is due: one retraining, on it.
    assert [r.batch for r in weekly.rows if r.retrained] == ["2024-01-07"]
    assert "'0 0 * * 1' was due 2024-01-08 00:00" in weekly.rows[2].reason
    assert trained_on(root, "schedule") == ["2024-01-04", "2024-01-07"]
    assert weekly.rows[3].champion == "2" and never.rows[3].champion == "1"


def test_new_data_and_the_controller_order_batches_by_their_period(write_project):
    assert new_data(state(trained_batch="9", newest_batch="10")).trigger == "new_data"
    assert new_data(state(trained_batch="10", newest_batch="9")) is None
    assert new_data(state(trained_batch="2013-W52", newest_batch="2014-W01"))
    with pytest.raises(BatchLabelError, match="is not a week"):
        new_data(state(trained_batch="2013-12", newest_batch="2014-01", batch_period="week"))

    toml = BATCHED_CT.replace("[ct]\n", '[ct]\nbatch_table = "events"\n')
    root = write_project(BATCHED.format(periods=INTEGERS), toml=toml)
    project = load_project(root)
    project.lake.append("events", pd.DataFrame({"batch": [2, 10, 9], "x1": [0.0, 1, 2]}))
    controller = Controller(project, log=lambda m: None)
    assert controller.state().newest_batch == "10"
    assert controller.batch_value("10") == 10  # the pipeline's `end` defaults to an integer


def test_what_training_already_answered_fires_no_more():
    """A challenger the gates refused (or a batch quarantined) was a training all the same:
    the same batch, drift or metric does not start run after run."""
    assert new_data(state(newest_batch="2013-04", tried_batch="2013-04")) is None
    assert no_champion(state(champion=None, newest_batch="2013-04", tried_batch="2013-04")) is None
    assert no_champion(state(champion=None, newest_batch="2013-05", tried_batch="2013-04"))
    fire = new_data(state(newest_batch="2013-05", tried_batch="2013-04"))
    assert fire and "and than 2013-04, the last CT run's" in fire.reason
    seen = monitoring(0.3, roc_auc=0.55)
    seen.at = datetime(2013, 6, 30)
    after_it = state(monitoring=seen, last_training_at=datetime(2013, 7, 1))
    assert drift(0.25)(after_it) is None
    assert performance("roc_auc", 0.6)(after_it) is None
    before_it = state(monitoring=seen, last_training_at=datetime(2013, 6, 1))
    assert drift(0.25)(before_it) and performance("roc_auc", 0.6)(before_it)


def test_the_controller_counts_a_refused_challengers_batch_as_tried(write_project):
    toml = BATCHED_CT.replace("[ct]\n", '[ct]\nbatch_table = "events"\n')
    root = write_project(BATCHED.format(periods=INTEGERS), toml=toml)
    project = load_project(root)
    project.lake.append("events", pd.DataFrame({"batch": [9], "x1": [0.0]}))
    controller = Controller(project, triggers=[no_champion, new_data], log=lambda m: None)
    controller.run([Fire("bootstrap", "first")], "9")
    project.lake.append("events", pd.DataFrame({"batch": [10], "x1": [0.0]}))
    assert [f.trigger for f in controller.check()] == ["new_data"]
    refused = CTRun(model="toy", trigger="new_data", reason="test", batch="10",
                    status="completed", champion_before="1", champion_after="1")  # fmt: skip
    project.metadata.add(refused)
    assert controller.state().tried_batch == "10"
    assert controller.check() == []  # not again, tick after tick
    project.lake.append("events", pd.DataFrame({"batch": [11], "x1": [0.0]}))
    assert [f.trigger for f in controller.check()] == ["new_data"]


def test_a_ct_run_killed_hard_is_closed_by_the_next(write_project):
    root = write_project(SLOW, toml=CT)
    (root / "slow").touch()
    killed = subprocess.Popen([*ESTEIRA, "ct", "trigger", "-p", str(root), "--reason", "first"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env())  # fmt: skip
    wait_for(root / "training", killed)
    killed.kill()
    killed.wait(timeout=30)
    (root / "slow").unlink()
    again = subprocess.run([*ESTEIRA, "ct", "trigger", "-p", str(root), "--reason", "second"],
                           capture_output=True, text=True, env=_env(), timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    second, first = open_project(root).metadata.ct_runs("toy")
    assert (first.status, first.error) == ("interrupted", "the CT process died during this run")
    assert second.status == "completed"
    runs = open_project(root).metadata.runs()
    assert sorted(r.status for r in runs) == ["completed", "failed"]  # none left 'running'
