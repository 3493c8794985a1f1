"""The metadata store on a real PostgreSQL server (started by the tests): locks shared by
every host, lost by a holder that dies, and one-line errors for a server that is down,
refuses the credentials, or a driver that is missing. The metadata, registry, CT and
concurrency suites run on PostgreSQL too (`make test`, ESTEIRA_TEST_BACKEND=postgres)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esteira.metadata import MetadataStore, MetadataUnreachable, PipelineRun
from esteira.registry import PromotionError, alias_lock

SRC = str(Path(__file__).resolve().parents[1] / "src")

HOLD = """
import sys, time
from esteira.metadata import MetadataStore
store = MetadataStore(sys.argv[1])
with store.lock(sys.argv[2]) as held:
    print("held" if held else "busy", flush=True)
    time.sleep(600)
"""


def holder(url: str, name: str) -> subprocess.Popen:
    """Another host: a process that takes `name` and keeps it until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url, name], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": SRC})  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_is_one_holder_on_every_host_and_dies_with_it(postgres_server):
    url = postgres_server.new_database()
    store = MetadataStore(url)
    assert store.shared
    other = holder(url, "ct-flight_delays")
    try:
        started = time.monotonic()
        with store.lock("ct-flight_delays", timeout_s=0.5) as held:
            assert not held
        assert time.monotonic() - started >= 0.5  # it waited as long as it was told
        with store.lock("ct-another_model") as held:  # a lock per name
            assert held
    finally:
        other.send_signal(signal.SIGKILL)  # the holder dies without letting go
        other.wait()
    deadline = time.monotonic() + 10
    while True:
        with store.lock("ct-flight_delays") as held:
            if held:
                break
        assert time.monotonic() < deadline, "the dead holder's lock was never released"
        time.sleep(0.1)
    with store.lock("ct-flight_delays") as held:  # and let go again when done
        assert held


def test_promotions_from_two_hosts_take_turns(postgres_server, write_project, monkeypatch):
    """Two runs on hosts of their own (their own home and file locks) sharing the
    metadata: the second waits for the first's promotion, and says so when it waited too
    long."""
    url = postgres_server.new_database()
    monkeypatch.setenv("ESTEIRA_METADATA_URL", url)
    from esteira import load_project

    root = write_project("""
        from esteira import pipeline, step

        @step
        def one() -> int:
            return 1

        flow = pipeline("flow", [one])
    """)
    monkeypatch.setenv("ESTEIRA_HOME", str(root / "host-b"))
    here = load_project(root)
    other = holder(url, "registry-flight_delays")
    try:
        busy = pytest.raises(PromotionError, match="another promotion of 'flight_delays'")
        with busy, alias_lock(here, "flight_delays", timeout_s=0.3):
            pass
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    with alias_lock(here, "flight_delays", timeout_s=10):
        pass


def test_runs_round_trip_through_postgresql(postgres_server):
    store = MetadataStore(postgres_server.new_database())
    store.add(PipelineRun(id="r1", project="p", pipeline="train", status="running",
                          executor="host", code_version="c", params={"a": [1, 2]}))  # fmt: skip
    (run,) = store.runs()
    assert (run.id, run.params) == ("r1", {"a": [1, 2]})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://esteira:s3cret@127.0.0.1:1/esteira", "Connection refused"),
        ("postgresql+psycopg://nobody:s3cret@127.0.0.1:{port}/esteira", "nobody"),
        ("postgresql+nosuchdriver://esteira@127.0.0.1/esteira", "not a database URL"),
        ("not a url at all", "not a database URL"),
    ],
    ids=["server down", "unknown user", "unknown driver", "not a URL"],
)
def test_an_unusable_server_is_one_line_naming_it_without_the_password(
    postgres_server, url, message
):
    with pytest.raises(MetadataUnreachable) as caught:
        MetadataStore(url.format(port=postgres_server.port))
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert "s3cret" not in text


def test_mlflow_on_a_server_that_is_down_is_one_line_without_the_password(tmp_path):
    from esteira.errors import TrackingError
    from esteira.tracking import Tracker

    uri = "postgresql+psycopg://esteira:s3cret@127.0.0.1:1/mlflow"
    with pytest.raises(TrackingError) as caught:
        _ = Tracker(uri, uri, "e", tmp_path).client
    text = str(caught.value)
    assert "Connection refused" in text and "\n" not in text and "s3cret" not in text
