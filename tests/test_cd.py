"""Level 2's CD: `esteira cd` puts a candidate through the gates of staging (its data and
model gates passed, a real service on loopback answers a smoke test, a bounded load test
holds against the champion served beside it) and makes it champion there; prod takes only
versions that passed staging's CD, copied into its own registry, with a person's approval."""

from __future__ import annotations

import time

import pytest
from test_cli import esteira

from esteira.cicd.cd import load_gate, run_cd
from esteira.cicd.service import LoadFigures
from esteira.config import CDSection, load_settings
from esteira.metadata import CDDecision
from esteira.project import load_project, open_project
from esteira.registry import CHAMPION, PromotionError, Registry
from esteira.releases import build, deploy

# `slow_ms` makes the model sleep in every prediction, so a test can make a candidate
# slower than its champion.
CODE = """
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from esteira import pipeline, step
from esteira.steps import promote


class Model(LogisticRegression):
    def __init__(self, slow_ms=0.0, C=1.0):
        super().__init__(C=C)
        self.slow_ms = slow_ms

    def predict_proba(self, X):
        time.sleep(self.slow_ms / 1000)
        return super().predict_proba(X)


def rows(seed, n):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    df["label"] = (df.x1 + 0.5 * df.x2 + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return df


@step(outputs=("train_set", "test_set"))
def data(ctx, seed: int = 0):
    batch = rows(seed, 1500)
    ctx.validate_batch(batch, "events", f"b{seed}")
    return batch, rows(1000, 1000)


@step(outputs="model")
def train(train_set, slow_ms: float = 0.0):
    return Model(slow_ms=slow_ms).fit(train_set[["x1", "x2"]], train_set.label)


@step(outputs="registered")
def register(ctx, model, test_set):
    m = ctx.log_model(model, test_set[["x1", "x2"]].head(3), register_as="toy",
                      predict_fn="predict_proba", alias="challenger")
    return {"name": m.name, "version": m.version}


train_flow = pipeline("train", [data, train, register, promote])
"""

TOML = """
[model]
trusted_types = ["pipelines.Model"]

[gates]
check_compatibility = false
tolerance = 0.05

[ct]
model = "toy"

[cd]
requests = 60
clients = 2
"""


@pytest.fixture
def project(write_project):
    return write_project(CODE, TOML)


def deployed(root, env: str = "staging") -> dict[str, str]:
    environ = {"ESTEIRA_ENV": env}
    target = open_project(root, environ)
    deploy(target.settings, target.metadata, build(load_settings(root, {}))[0].id, "test")
    return environ


def test_cd_trains_with_the_release_gates_it_live_and_makes_it_staging_champion(project):
    staging = deployed(project)
    told: list[str] = []
    outcome = run_cd(project, staging, tell=told.append)
    assert outcome.passed, outcome.summary()
    assert outcome.promoted and outcome.version == "1" and outcome.champion_version is None
    assert any("running pipeline 'train'" in line for line in told)  # no version yet: trained
    gates = {c.name: c for c in outcome.checks}
    assert list(gates) == ["data_validation", "model_gates", "compatibility", "smoke_test",
                           "load_test"]  # fmt: skip
    assert "events/b0" in gates["data_validation"].reason
    assert gates["load_test"].figures["candidate"]["requests"] == 60
    assert gates["load_test"].figures["candidate"]["errors"] == 0
    registry = Registry(load_project(project, staging))
    assert registry.by_alias("toy", CHAMPION).version == "1"
    (change,) = registry.history("toy")
    assert change.action == "cd" and "passed the CD gates of staging" in change.reason

    # A second candidate is measured against the champion served beside it.
    second = run_cd(project, staging, version=None)
    assert second.version == "1" and second.passed  # the release trained no newer version
    stored = load_project(project, staging).metadata.cd_decisions("toy", "1", passed=True)
    assert len(stored) == 2 and stored[0].release == outcome.release
    assert {c["name"] for c in stored[0].checks} >= {"smoke_test", "load_test"}


def test_staging_champion_moves_only_through_cd(project):
    staging = deployed(project)
    from esteira.pipelines.runner import run_pipeline

    decision = run_pipeline(load_project(project, staging), "train").output("decision")
    assert decision["passed"] and decision["awaiting"] == "cd"
    registry = Registry(load_project(project, staging))
    assert registry.by_alias("toy", CHAMPION) is None
    with pytest.raises(PromotionError, match="esteira cd --env staging"):
        registry.promote("toy", "1", "by hand")


def test_load_gate_fails_a_candidate_slower_than_the_champion():
    def measured(ms: float) -> LoadFigures:
        return LoadFigures(sent=100, errors=0, wall_s=1.0, latencies_ms=[ms] * 100)

    config = CDSection()
    fast = load_gate({"2": measured(4.0), "1": measured(4.0)}, "2", "1", config)
    assert fast.passed, fast.reason
    slow = load_gate({"2": measured(40.0), "1": measured(4.0)}, "2", "1", config)
    assert not slow.passed and "p99 40.0 ms over 11.0 ms (1.5x the champion's 4.0 ms" in slow.reason
    failing = LoadFigures(sent=100, errors=3, wall_s=1.0, latencies_ms=[4.0] * 97,
                          first_error="HTTP 500: boom")  # fmt: skip
    broken = load_gate({"2": failing}, "2", None, config)
    assert not broken.passed and "3 of 100 requests failed (HTTP 500: boom)" in broken.reason


def test_cd_fails_a_candidate_slower_than_the_champion_live(project):
    staging = deployed(project)
    assert run_cd(project, staging).promoted
    from esteira.pipelines.runner import run_pipeline

    run_pipeline(load_project(project, staging), "train", {"seed": 1, "slow_ms": 50.0})
    outcome = run_cd(project, staging)
    assert outcome.version == "2" and not outcome.passed and not outcome.promoted
    (load,) = [c for c in outcome.checks if c.name == "load_test"]
    assert not load.passed and "the champion's" in load.reason, load.reason
    assert load.figures["candidate"]["p99_ms"] > load.figures["champion"]["p99_ms"]
    assert Registry(load_project(project, staging)).by_alias("toy", CHAMPION).version == "1"
    failed = esteira("cd", "-p", str(project), "--env", "staging", "--version", "2")
    assert failed.returncode == 1 and "stays at champion 1" in failed.stdout, failed.stdout


def test_prod_takes_only_versions_that_passed_staging_cd_and_with_approval(project):
    staging = deployed(project)
    prod = deployed(project, "prod")
    from esteira.pipelines.runner import run_pipeline

    run_pipeline(load_project(project, staging), "train")
    cli = ("-p", str(project), "--env", "prod")
    early = esteira("promote", "--approve", "--reason", "ok", *cli)
    assert early.returncode != 0 and "no champion in staging" in early.stderr, early.stderr
    named = esteira("promote", "toy", "1", "--approve", "--reason", "ok", *cli)
    assert named.returncode != 0 and "passed esteira cd in staging 0 time(s)" in named.stderr
    assert "Traceback" not in named.stderr

    assert run_cd(project, staging).promoted
    unapproved = esteira("promote", "--reason", "ok", *cli)
    assert unapproved.returncode != 0 and "--approve" in unapproved.stderr
    assert "toy" not in Registry(open_project(project, prod)).models()  # nothing copied

    done = esteira("promote", "--approve", "--reason", "reviewed the CD figures", *cli)
    assert done.returncode == 0, done.stderr
    assert "staging version 1, passed esteira cd 1 time(s)" in done.stdout
    registry = Registry(load_project(project, prod))
    champion = registry.version("toy", registry.by_alias("toy", CHAMPION).version)
    assert champion.tags["esteira.copied_from"] == "staging/1"
    assert champion.metrics  # the source run's metrics came along
    (change,) = registry.history("toy")
    assert (change.action, change.reason) == ("approve", "reviewed the CD figures")
    # Served from prod's own copy of the files.
    from esteira.models import load

    assert load(load_project(project, prod), "toy", champion.version).predict_raw is not None


def test_cd_record_is_shown_by_models(project):
    staging = deployed(project)
    run_cd(project, staging)
    listed = esteira("models", "toy", "-p", str(project), "--env", "staging")
    assert listed.returncode == 0, listed.stderr
    assert "passed p99" in listed.stdout, listed.stdout
    assert CDDecision.__tablename__ == "cd_decisions"


def test_a_canary_share_is_stable_per_request_id():
    from esteira.serving.app import in_canary

    ids = [f"request-{i}" for i in range(20_000)]
    chosen = [i for i in ids if in_canary(i, 10)]
    assert 0.09 < len(chosen) / len(ids) < 0.11
    assert chosen == [i for i in ids if in_canary(i, 10)]  # the same ids every time
    assert not any(in_canary(i, 0) for i in ids[:1000])


LIVE = """
[environments.live]
promotion = "approval"   # versions wait as challenger: the canary decides with a person
"""


def test_canary_on_live_traffic_promotes_a_good_one_and_rolls_back_a_slow_one(write_project):
    import httpx
    from test_serving import Server

    from esteira.cicd.canary import judge_canary
    from esteira.pipelines.runner import run_pipeline

    root = write_project(CODE, TOML + "\ncanary_min_requests = 40\n" + LIVE)
    live = {"ESTEIRA_ENV": "live"}
    run_pipeline(load_project(root, live), "train")
    Registry(load_project(root, live)).promote("toy", "1", "first", approved=True)
    run_pipeline(load_project(root, live), "train", {"seed": 1})
    assert Registry(load_project(root, live)).by_alias("toy", "challenger").version == "2"

    def traffic(server: Server, n: int) -> dict[str, int]:
        answered: dict[str, int] = {}
        body = {"records": [{"x1": 0.3, "x2": -1.2}]}
        for i in range(n):
            got = httpx.post(f"{server.url}/predict", json=body,
                             headers={"x-request-id": f"r{i}"}, timeout=30)  # fmt: skip
            assert got.status_code == 200, got.text
            answered[got.json()["version"]] = answered.get(got.json()["version"], 0) + 1
        return answered

    server = Server(root, "--model", "toy", "--canary", "challenger:50", "--watch", "0.3",
                    env=live)  # fmt: skip
    try:
        server.wait_up()
        server.wait_ready()
        answered = traffic(server, 200)
        assert set(answered) == {"1", "2"} and 60 < answered["2"] < 140, answered
        assert httpx.get(f"{server.url}/model").json()["canary"]["version"] == "2"
    finally:
        server.stop()  # writes the rest of the prediction log
    waiting = judge_canary(root, live)
    assert waiting.passed and waiting.awaiting == "approval" and not waiting.promoted
    gates = {c.name: c for c in waiting.checks}
    assert set(gates) == {"canary_traffic", "canary_errors", "canary_latency",
                          "canary_prediction_drift"}  # fmt: skip
    assert gates["canary_traffic"].figures["canary"]["requests"] == answered["2"]
    approved = judge_canary(root, live, approve=True, reason="canary clean")
    assert approved.promoted
    registry = Registry(load_project(root, live))
    assert registry.by_alias("toy", CHAMPION).version == "2"

    # A slow challenger: the canary fails on latency, and its alias goes, so the service
    # (following it) stops routing to it.
    run_pipeline(load_project(root, live), "train", {"seed": 2, "slow_ms": 40.0})
    assert registry.by_alias("toy", "challenger").version == "3"
    server = Server(root, "--model", "toy", "--canary", "challenger:50", "--watch", "0.3",
                    env=live)  # fmt: skip
    try:
        server.wait_up()
        server.wait_ready()
        traffic(server, 120)
        time.sleep(1.5)  # the log's next flush
        slow = judge_canary(root, live)
        assert not slow.passed and not slow.promoted
        (latency,) = [c for c in slow.checks if c.name == "canary_latency"]
        assert not latency.passed, latency.reason
        assert registry.by_alias("toy", "challenger") is None
        assert registry.by_alias("toy", CHAMPION).version == "2"
        time.sleep(1.0)  # the service notices the alias is gone
        assert traffic(server, 40) == {"2": 40}
    finally:
        server.stop()
    changes = [(c.alias, c.action) for c in registry.history("toy", "challenger")]
    assert changes[-1] == ("challenger", "retire")
    decisions = load_project(root, live).metadata.cd_decisions("toy", kind="canary")
    assert [d.passed for d in decisions] == [False, True, True]
