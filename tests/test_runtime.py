"""The thread budget: the rule, a step, batch prediction and the service run under it, and the
compatibility gate's latency measurement, which no single slow call can fail."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime, which the budget limits
from threadpoolctl import threadpool_info

from esteira import load_project
from esteira.config import GatesConfig
from esteira.pipelines.runner import run_pipeline
from esteira.runtime import (
    default_threads,
    thread_budget,
    training_threads,
    usable_cores,
)
from esteira.validation.compatibility import (
    FEWEST_CALLS,
    compatibility_gate,
    latency_budget_ms,
    latency_ms,
    time_calls,
)
from esteira.validation.decision import Evidence


def thread_counts() -> dict[str, int]:
    """Threads each loaded OpenMP/BLAS library would use, from the calling thread."""
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


# the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "load", "running", "threads"),
    [
        (2, 0.0, 1, 2),  # idle
        (2, 1.0, 1, 2),  # only this process was busy: the load average counts it
        (2, 2.1, 2, 1),  # a competitor kept a core busy for a minute, and still does
        (2, 0.2, 2, 1),  # a competitor started seconds ago: the load average lags, not the count
        (2, 2.0, 1, 1),  # a competitor that comes and goes: the load average remembers it
        (2, 9.0, 12, 1),  # oversubscribed: never fewer than one
        (16, 4.4, 3, 13),  # 3 others by the load average (4.4 - this process, rounded)
        (16, 0.0, 6, 11),  # 5 others running now
        (8, 3.0, None, 6),  # no instant count (not Linux): the load average alone
    ],
)
def test_default_threads_are_the_cores_others_leave_idle(cores, load, running, threads):
    assert default_threads(cores, load, running) == threads


def test_configured_threads_override_the_rule():
    assert training_threads(3) == 3
    assert 1 <= training_threads(None) <= usable_cores()


def test_thread_budget_limits_loaded_libraries_and_children_then_restores():
    before = thread_counts()
    saved = os.environ.get("OMP_NUM_THREADS")
    with thread_budget(1):
        assert set(thread_counts().values()) == {1}
        assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "1"
        with thread_budget(2):
            assert set(thread_counts().values()) == {2}
        assert set(thread_counts().values()) == {1}
    assert thread_counts() == before
    assert os.environ.get("OMP_NUM_THREADS") == saved


# where it applies ----------------------------------------------------------------------

STEP = """
import os

from threadpoolctl import threadpool_info

from esteira import pipeline, step


@step
def inside():
    return {"libraries": sorted({i["num_threads"] for i in threadpool_info()}),
            "env": os.environ.get("OMP_NUM_THREADS")}


flow = pipeline("flow", [inside])
"""


@pytest.mark.parametrize("configured", [1, 2])
def test_a_step_runs_under_the_configured_threads(write_project, configured):
    project = load_project(write_project(STEP, toml=f"[runtime]\nthreads = {configured}\n"))
    seen = run_pipeline(project, "flow").output("inside")
    assert seen == {"libraries": [configured], "env": str(configured)}


def test_a_step_runs_under_the_default_rule(write_project):
    project = load_project(write_project(STEP))
    seen = run_pipeline(project, "flow").output("inside")
    (threads,) = seen["libraries"]
    assert 1 <= threads <= usable_cores() and seen["env"] == str(threads)


SERVED = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from esteira import pipeline, step


@step
def train(ctx):
    x = pd.DataFrame({"x": np.arange(20, dtype=float)})
    model = LinearRegression().fit(x, x["x"])
    ctx.log_model(model, x.head(2), register_as="line", alias="champion")


flow = pipeline("flow", [train])
"""


def test_the_service_predicts_with_serving_threads(write_project):
    """OpenMP's limit holds per thread: the threads that predict must take it themselves."""
    from fastapi.testclient import TestClient

    from esteira.serving.app import ServeConfig, create_app

    root = write_project(SERVED, toml="[runtime]\nserving_threads = 1\n")
    project = load_project(root)
    run_pipeline(project, "flow")
    app = create_app(project, ServeConfig("line", log_predictions=False), log=lambda m: None)
    with TestClient(app) as client:
        deadline = time.monotonic() + 60  # the model loads in the background
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.05)
        # what a prediction's worker thread sees (the batcher hands batches to such threads)
        seen = client.portal.call(asyncio.to_thread, thread_counts)
    assert set(seen.values()) == {1}


# the compatibility gate's measurement ----------------------------------------------------


def test_one_slow_call_cannot_fail_a_model():
    fast = [0.004] * 20
    assert latency_ms([*fast, 5.0]) == pytest.approx(4.0)
    assert latency_ms([0.004, 5.0, 0.004]) == pytest.approx(4.0)  # even among three calls
    with pytest.raises(ValueError, match="no timed calls"):
        latency_ms([])


def test_calls_are_timed_after_warm_up_for_enough_calls_and_time():
    calls = []
    started = time.perf_counter()
    timings = time_calls(lambda: calls.append(1), warmup=3, min_calls=10, min_seconds=0.05)
    assert time.perf_counter() - started >= 0.05  # fast calls: timed for min_seconds
    assert len(timings) > 10 and len(calls) == len(timings) + 3
    slow = time_calls(lambda: time.sleep(0.02), warmup=0, min_calls=100, max_seconds=0.1)
    assert FEWEST_CALLS <= len(slow) < 100  # a slow model stops at max_seconds


def evidence(median_ms: float, in_process_ms: float | None = None) -> Evidence:
    found = {"ok": True, "uri": "models:/m/1", "median_ms": median_ms, "threads": 1, "rows": 5}
    if in_process_ms is not None:
        found["in_process_ms"] = in_process_ms
    return Evidence(
        model="m",
        version="1",
        champion_version=None,
        rows=10,
        task="binary",
        metric="roc_auc",
        challenger={},
        champion=None,
        compatibility=found,
    )


def test_the_budget_is_relative_to_the_gating_process_unless_absolute():
    relative = GatesConfig(latency_budget_ratio=2.0, latency_slack_ms=5.0)
    assert latency_budget_ms(relative, 10.0) == 25.0
    assert compatibility_gate(evidence(24.0, 10.0), relative).passed
    check = compatibility_gate(evidence(26.0, 10.0), relative)
    assert not check.passed
    assert "over the 25 ms budget (2x its 10.0 ms in the gating process + 5 ms)" in check.reason
    assert not compatibility_gate(evidence(3.0), relative).passed  # nothing to compare with

    absolute = GatesConfig(latency_budget_ms=100)
    assert compatibility_gate(evidence(90.0), absolute).passed
    assert compatibility_gate(evidence(90.0, 1.0), absolute).passed  # the ratio does not apply
    assert "over the 100 ms budget" in compatibility_gate(evidence(110.7), absolute).reason
