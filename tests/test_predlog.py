"""The prediction log loses nothing answered: each answer is on a local segment before it
goes out, segments reach the Delta table exactly once (app transactions), a service that
died has its segments written by the next one, and SIGKILL under load loses no row."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest
from test_serving import Server, root  # noqa: F401 (the served toy project)

from esteira import load_project
from esteira.lake import Lake
from esteira.serving.predlog import Logged, PredictionLog

TABLE = "predictions_toy"


def entry(request_id: str, rows: int = 2) -> Logged:
    completed = [{"x1": 0.5, "at": "2013-03-01T00:00:00.000000Z"}] * rows  # as a service logs
    return Logged(request_id, datetime.now(UTC), "1", 1.5, completed, [0.25] * rows)


def opened(tmp_path, lake: Lake) -> PredictionLog:
    log = PredictionLog(lake, TABLE, "toy", tmp_path / "predlog", flush_s=3600, log=lambda m: None)
    log.start()
    return log


def kill(log: PredictionLog) -> None:
    """What a SIGKILL leaves: the segment on disk, its lock released, nothing flushed."""
    log._stop.set()
    log._thread.join()
    os.close(log._fd)
    log._owner.close()


def test_answers_reach_the_table_once_and_a_clean_stop_leaves_nothing(tmp_path):
    lake = Lake(tmp_path / "lake")
    log = opened(tmp_path, lake)
    for i in range(3):
        log.add(entry(f"r{i}"))
    assert log.backlog == 6 and not lake.exists(TABLE)
    assert log.flush() == 6 and log.backlog == 0
    log.add(entry("r3", rows=1))
    log.close()
    rows, _ = lake.read(TABLE)
    assert sorted(rows.request_id) == ["r0", "r0", "r1", "r1", "r2", "r2", "r3"]
    assert json.loads(rows.features.iloc[0]) == {"x1": 0.5, "at": "2013-03-01T00:00:00.000000Z"}
    assert list(rows.columns)[-1] == "error" and set(rows.error) == {""}
    assert not any((tmp_path / "predlog").iterdir())  # no segment, no folder


def test_a_dead_services_segments_are_written_by_the_next_exactly_once(tmp_path):
    lake = Lake(tmp_path / "lake")
    dead = opened(tmp_path, lake)
    dead.add(entry("a"))
    dead.add(entry("b"))
    dead.flush()  # segment 1 written
    dead.add(entry("c"))  # segment 2: on disk only
    with open(dead._current(), "ab") as f:
        f.write(b'{"request_id": "cut sh')  # a line the kill cut short: never answered
    kill(dead)

    alive = opened(tmp_path, lake)  # recovers at start
    assert sorted(set(lake.read(TABLE)[0].request_id)) == ["a", "b", "c"]
    assert not (tmp_path / "predlog" / dead._own.name).exists()
    assert alive.written == 2

    # Killed between the append and deleting its segment: the table's app transaction
    # says it landed, so the next start deletes it without writing it again.
    half = opened(tmp_path, lake)
    half.add(entry("d"))
    with half._lock:
        half._open_segment()
    segment = half._own / "0000000001.jsonl"
    app_id = f"esteira-prediction-log-{half._own.name}"
    lake.append(TABLE, pd.DataFrame.from_records([{**_row("d")}]), transaction=(app_id, 1))
    kill(half)
    assert segment.exists()
    opened(tmp_path, lake)
    assert not segment.exists()
    assert list(lake.read(TABLE)[0].request_id).count("d") == 1


def _row(request_id: str) -> dict:
    return {"request_id": request_id, "row": 0, "at": datetime.now(UTC), "model": "toy",
            "version": "1", "shadow": False, "latency_ms": 1.0, "features": "{}",
            "prediction": "0.5", "error": ""}  # fmt: skip


def test_sigkill_under_load_loses_no_answered_prediction(root):  # noqa: F811
    project = load_project(root)
    before = set(project.lake.read(TABLE)[0].request_id) if project.lake.exists(TABLE) else set()
    server = Server(root, "--model", "toy")
    server.wait_up()
    server.wait_ready()
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=10) as http:
            i = 0
            while not stop.is_set():
                request_id = f"kill-{n}-{i}"
                i += 1
                try:
                    got = http.post(f"{server.url}/predict", headers={"x-request-id": request_id},
                                    json={"records": [{"x1": 0.5, "x2": 0.1}]})  # fmt: skip
                except httpx.TransportError:
                    return  # the server is gone
                if got.status_code == 200:
                    with lock:
                        answered.append(request_id)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in clients:
        t.start()
    time.sleep(2.5)  # a flush or two, and answers still arriving when the kill lands
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    stop.set()
    for t in clients:
        t.join()
    assert len(answered) > 50

    again = Server(root, "--model", "toy")  # writes the dead service's segments at start
    try:
        again.wait_up()
        again.wait_started()
    finally:
        again.stop()
    logged = load_project(root).lake.read(TABLE)[0]
    logged = logged[~logged.request_id.isin(before)]
    missing = set(answered) - set(logged.request_id)
    assert not missing, f"{len(missing)} of {len(answered)} answered predictions lost"
    assert not logged.duplicated(["request_id", "row"]).any()


@pytest.mark.parametrize("compact_every", [1])
def test_the_log_is_compacted(tmp_path, compact_every):
    lake = Lake(tmp_path / "lake")
    for i in range(12):
        lake.append(TABLE, pd.DataFrame.from_records([_row(f"r{i}")]))
    files = len(lake.open(TABLE).file_uris())
    found = lake.compact(TABLE, retention_hours=0)
    assert files == 12 and len(lake.open(TABLE).file_uris()) == compact_every
    assert found["vacuumed"] == 12 and len(lake.read(TABLE)[0]) == 12
