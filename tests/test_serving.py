"""The prediction service on a real uvicorn server on 127.0.0.1, started by each test."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from test_cli import ESTEIRA, _env
from test_ct import CT
from test_gates import PIPELINE as GATED

from esteira import load_project
from esteira.pipelines.runner import run_pipeline
from esteira.registry import Registry

ROWS = [
    {"x1": 0.5, "x2": 0.1},
    {"x1": -1.2, "x2": 0.3},
    {"x1": 2.0, "x2": None},
]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project whose model 'toy' has v1 as champion and v2 (worse) as challenger only."""
    root = tmp_path_factory.mktemp("serving") / "proj"
    root.mkdir()
    (root / "pipelines.py").write_text(textwrap.dedent(GATED))
    (root / "esteira.toml").write_text(CT)
    project = load_project(root)
    run_pipeline(project, "flow")
    run_pipeline(project, "flow", {"seed": 1, "noise_a": 0.4, "noise_b": 0.4})
    assert Registry(project).by_alias("toy", "champion").version == "1"
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [*ESTEIRA, "serve", "-p", str(root), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=_env() | (env or {}))  # fmt: skip

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                httpx.get(f"{self.url}/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the server did not come up")

    def wait_started(self, timeout: float = 120) -> None:
        """Until the service is set up (the port answers before: /ready says "starting")."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/ready").json().get("reason", "").startswith("starting"):
            assert time.monotonic() < deadline, "the service did not finish starting"
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until a model is loaded."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/ready").status_code != 200:
            assert time.monotonic() < deadline, "no model was loaded"
            time.sleep(0.1)

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.communicate(timeout=60)


@pytest.fixture
def serve(root) -> Iterator[Server]:
    servers: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Server:
        server = Server(root, *args, env=env)
        servers.append(server)
        server.wait_up()
        if ready:  # the port answers first; the model loads in the background
            server.wait_ready()
        else:
            server.wait_started()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def limited(root) -> Iterator[Server]:
    """One server, at most 10 rows a request, for all the malformed-request cases."""
    server = Server(root, "--model", "toy", "--max-rows", "10")
    server.wait_up()
    server.wait_ready()
    yield server
    server.stop()


def test_predictions_match_the_model_in_process(root, serve):
    server = serve("--model", "toy")
    answer = httpx.post(f"{server.url}/predict", json={"records": ROWS}).json()
    assert answer["version"] == "1" and answer["model"] == "toy"
    import mlflow.sklearn

    project = load_project(root)
    project.tracker.activate()
    model = mlflow.sklearn.load_model("models:/toy/1")
    expected = model.predict_proba(pd.DataFrame(ROWS).astype(float))[:, 1]
    assert answer["predictions"] == pytest.approx(expected.tolist(), abs=1e-12)
    info = httpx.get(f"{server.url}/model").json()
    assert info["version"] == "1" and [c["name"] for c in info["signature"]] == ["x1", "x2"]
    assert httpx.get(f"{server.url}/ready").json()["ready"] is True


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"records": [{"x1": 1.0}]}, 422, "missing (double)"),
        ({"records": [{"x1": "high", "x2": 1.0}]}, 422, "expected a number, got 'high'"),
        ({"records": [{"x1": 1.0, "x2": 1.0, "x3": 2}]}, 422, "not an input of this model"),
        ({"records": []}, 422, "records is empty"),
        ({"rows": [{"x1": 1.0}]}, 422, 'expected an object {"records"'),
        ({"records": [{"x1": 1.0, "x2": 1.0}] * 11}, 413, "exceed the limit of 10"),
        ({"records": [[1.0, 2.0]]}, 422, "a row must be an object"),
        (b"", 400, "empty body"),
        (b"{not json", 400, "body is not JSON"),
    ],
)
def test_malformed_requests_get_4xx_naming_the_problem(limited, body, status, message):
    server = limited
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{server.url}/predict", content=content)
    assert response.status_code == status
    problems = " ".join(p.get("field", "") + " " + p["error"] for p in response.json()["problems"])
    assert message in problems, response.json()


def test_hot_swap_under_concurrent_requests_fails_none(root, serve):
    project = load_project(root)
    registry = Registry(project)
    server = serve("--model", "toy", "--watch", "0.2")
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url) as c:
            for _ in range(2000):  # bounded
                if stop.is_set():
                    return
                r = c.post("/predict", json={"records": ROWS[:1]})
                seen.append((r.status_code, r.headers.get("x-model-version", "")))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    registry.promote("toy", "2", reason="hot swap test")
    try:
        deadline = time.monotonic() + 60
        while not any(v == "2" for _, v in seen[-50:]):
            assert time.monotonic() < deadline, "the service never swapped"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        registry.rollback("toy", reason="back to v1 for the other tests")
    assert {status for status, _ in seen} == {200}
    versions = [v for _, v in seen]
    assert versions[0] == "1" and versions[-1] == "2"
    assert httpx.get(f"{server.url}/ready").json()["version"] == "2"


def test_prediction_log_holds_every_request_after_sigterm(root, serve):
    server = serve("--model", "toy")
    ids = [f"req-{i}" for i in range(60)]
    with httpx.Client(base_url=server.url) as c:
        for request_id in ids:
            c.post("/predict", json={"records": ROWS}, headers={"x-request-id": request_id})
    out, err = server.stop()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells.
    assert server.proc.returncode in (0, -signal.SIGTERM), err
    assert "prediction log: " in out
    logged, _ = load_project(root).lake.read("predictions_toy")
    mine = logged[logged.request_id.isin(ids)]
    assert len(mine) == len(ids) * len(ROWS)
    assert set(mine.version) == {"1"} and not mine.shadow.any()
    first = mine[mine.request_id == "req-0"].sort_values("row")
    assert [json.loads(f) for f in first.features] == ROWS


def test_shadow_scores_are_logged_not_returned(root, serve):
    server = serve("--model", "toy", "--shadow", "challenger")
    answer = httpx.post(f"{server.url}/predict", json={"records": ROWS},
                        headers={"x-request-id": "shadowed"}).json()  # fmt: skip
    assert answer["version"] == "1"
    server.stop()
    logged, _ = load_project(root).lake.read("predictions_toy")
    mine = logged[logged.request_id == "shadowed"]
    assert sorted(set(zip(mine.version, mine.shadow, strict=True))) == [("1", False), ("2", True)]


def test_admin_reload_needs_the_token(serve):
    server = serve("--model", "toy", env={"ESTEIRA_ADMIN_TOKEN": "s3cret"})
    assert httpx.post(f"{server.url}/admin/reload").status_code == 401
    wrong = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["version"] == "1"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "esteira_request_latency_seconds_bucket" in metrics


def test_not_ready_until_the_alias_exists_and_unknown_models_fail_at_start(root, serve):
    server = serve("--model", "toy", "--alias", "production", "--watch", "0.2", ready=False)
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 503 and "has no 'production' yet" in ready.json()["reason"]
    assert httpx.post(f"{server.url}/predict", json={"records": ROWS}).status_code == 503
    Registry(load_project(root)).promote("toy", "1", reason="go live", alias="production")
    server.wait_ready(timeout=30)

    unknown = subprocess.run([*ESTEIRA, "serve", "-p", str(root), "--model", "nope"],
                             capture_output=True, text=True, env=_env(), timeout=120)  # fmt: skip
    assert unknown.returncode == 1
    assert "no registered model 'nope' (models: toy)" in unknown.stderr


def test_monitor_reads_the_prediction_log_joins_labels_and_writes_a_report(root, serve):
    server = serve("--model", "toy")
    with httpx.Client(base_url=server.url) as c:
        for i in range(40):
            c.post("/predict", json={"records": ROWS}, headers={"x-request-id": f"mon-{i}"})
    server.stop()
    project = load_project(root)
    labels = pd.DataFrame(
        [{"request_id": f"mon-{i}", "row": r, "label": int(ROWS[r]["x1"] > 0)}
         for i in range(40) for r in range(len(ROWS))]
    )  # fmt: skip
    project.lake.replace("toy_labels", labels)
    report = root / "report.html"
    out = subprocess.run([*ESTEIRA, "monitor", "-p", str(root), "--model", "toy", "--since", "1d",
                          "--labels", "toy_labels", "--report", str(report)],
                         capture_output=True, text=True, env=_env(), timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "of features drifted" in out.stdout and f"report: {report}" in out.stdout
    page = report.read_text()
    assert "x1" in page and "prediction" in page and "<svg" in page
    record = project.metadata.latest_monitoring("toy")
    assert record.source == "monitor" and record.metrics["roc_auc"] > 0.9


def test_batch_prediction_appends_with_lineage(root):
    import numpy as np

    project = load_project(root)
    rng = np.random.default_rng(5)
    inputs = pd.DataFrame({"id": range(1200), "x1": rng.normal(size=1200),
                           "x2": rng.normal(size=1200)})  # fmt: skip
    version = project.lake.replace("toy_inputs", inputs)
    command = [*ESTEIRA, "predict", "-p", str(root), "--model", "toy", "--input", "toy_inputs",
               "--output", "toy_scored", "--keep", "id", "--chunk-rows", "500"]  # fmt: skip
    for _ in range(2):  # appended, never overwritten
        done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
        assert done.returncode == 0, done.stderr
    assert f"1,200 rows of toy_inputs@v{version} scored by toy v1" in done.stdout
    scored, _ = project.lake.read("toy_scored")
    assert len(scored) == 2400 and scored.prediction_run.nunique() == 2
    assert set(scored.model_version) == {"1"} and set(scored.input_version) == {version}
    import mlflow.sklearn

    project.tracker.activate()
    model = mlflow.sklearn.load_model("models:/toy/1")
    first = scored[scored.prediction_run == scored.prediction_run.iloc[0]].sort_values("id")
    expected = model.predict_proba(inputs[["x1", "x2"]])[:, 1]
    assert first.prediction.to_numpy() == pytest.approx(expected, abs=1e-12)

    project.lake.replace("toy_bad", inputs.drop(columns=["x2"]))
    bad = subprocess.run([*ESTEIRA, "predict", "-p", str(root), "--model", "toy", "--input",
                          "toy_bad", "--output", "x"], capture_output=True, text=True,
                         env=_env(), timeout=300)  # fmt: skip
    assert bad.returncode == 1 and "lacks the model's inputs ['x2']" in bad.stderr
