"""The service under a long mixed load: 16 keep-alive clients send 20,000 valid requests
while poison requests go in all the time and the champion alias moves 10 times (promotions
and rollbacks). Nothing valid fails, no client sees the alias go back in time, and after a
clean stop every answered request is in the prediction log. Prints its figures (-s)."""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from test_serving import ROWS, Server, root  # noqa: F401 (the served toy project)

from esteira import load_project
from esteira.pipelines.runner import run_pipeline
from esteira.registry import Registry

CLIENTS = 16
VALID = 20_000
POISON_EVERY = 25
"""Each client sends one poison request after this many valid ones, on the same connection."""
DEADLINE_S = 300
MOVES = [("promote", "2"), ("promote", "3"), ("rollback", None), ("rollback", None),
         ("promote", "3"), ("promote", "2"), ("rollback", None), ("promote", "1"),
         ("promote", "3"), ("rollback", None)]  # fmt: skip
"""10 moves of the champion among three versions; a rollback goes back to the one before."""

# A poison of each kind the parser, the row checks and the envelope refuse, with its status.
POISON: list[tuple[bytes, int]] = [
    (b'{"records": [{"x1": 1' + b"0" * 400 + b', "x2": 0.1}]}', 400),  # 10**400
    (b'{"records": [{"x1": "\\ud800", "x2": 0.1}]}', 400),  # a lone surrogate
    (b'{"records": [{"x1": 0.5, "x2": 0.1, "\\udc00": 1}]}', 400),  # one in a field name
    (b'{"records": [{"x1": ' + b"9" * 5000 + b', "x2": 0.1}]}', 400),
    (b'{"records": [{"x1": NaN, "x2": 0.1}]}', 400),
    (b'{"records": [{"x1": "\xff", "x2": 0.1}]}', 400),  # not UTF-8
    (b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    (b'{"records": [{"x1": 0.5, "x2": 0.1, "x3": 2}]}', 422),  # an unknown field
    (b'{"records": [{"x1": 0.5, "x2": 0.1}, {"x2": 0.1}]}', 422),  # x1 missing in a row
    (b'{"records": [{"x1": "high", "x2": 0.1}]}', 422),
    (b'{"records": [null]}', 422),
    (b'{"records": []}', 422),
    (b'{"rows": [{"x1": 0.5, "x2": 0.1}]}', 422),
]


@dataclass(frozen=True)
class Answer:
    started: float
    """`time.monotonic()` when the request was sent, and when its answer was read."""
    ended: float
    status: int
    """0: no answer (the connection failed)."""
    version: str
    request_id: str
    rows: int
    predictions: tuple[float, ...]


@dataclass
class Epoch:
    """The alias at one version, from the move (`moved`: just before the registry call) to
    the moment /ready said the service serves it (`seen`)."""

    version: str
    moved: float
    seen: float = field(default=float("inf"))


@pytest.fixture(scope="module")
def soak_root(root):  # noqa: F811
    """The toy project with a third version (also a worse challenger) to move between."""
    run_pipeline(load_project(root), "flow", {"seed": 2, "noise_a": 0.4, "noise_b": 0.4})
    return root


def client(url: str, n: int, stop: threading.Event, valid: list[Answer],
           poisoned: list[tuple[int, int]]) -> None:  # fmt: skip
    """Valid requests of 1 to 3 rows, a poison after every POISON_EVERY, one connection
    (kept alive; reopened only if it fails, which counts as a failure)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    i = 0
    while not stop.is_set():
        i += 1
        if i % (POISON_EVERY + 1) == 0:
            body, want = POISON[(n + i) % len(POISON)]
            status, _ = _post(conn, body, f"poison-{n}-{i}")
            poisoned.append((status, want))
            continue
        rows = 1 + i % len(ROWS)
        request_id = f"soak-{n}-{i}"
        started = time.monotonic()
        status, answer = _post(conn, json.dumps({"records": ROWS[:rows]}).encode(), request_id)
        ok = status == 200 and answer["request_id"] == request_id
        valid.append(Answer(started, time.monotonic(), status if ok else -status,
                            answer.get("version", "") if ok else "", request_id, rows,
                            tuple(answer["predictions"]) if ok else ()))  # fmt: skip
        if status == 0:
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.close()


def _post(conn: http.client.HTTPConnection, body: bytes, request_id: str) -> tuple[int, dict]:
    try:
        conn.request("POST", "/predict", body, {"content-type": "application/json",
                                                "x-request-id": request_id})  # fmt: skip
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException):
        return 0, {}
    if response.getheader("connection", "").lower() == "close":
        conn.close()  # http.client reconnects on the next request
    return response.status, json.loads(data) if response.status == 200 else {}


def test_hot_swaps_under_load_with_poison_fail_nothing_and_lose_nothing(soak_root):
    registry = Registry(load_project(soak_root))
    assert registry.by_alias("toy").version == "1"
    server = Server(soak_root, "--model", "toy", "--watch", "0.2")
    server.wait_up()
    server.wait_ready()
    valid: list[list[Answer]] = [[] for _ in range(CLIENTS)]
    poisoned: list[tuple[int, int]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(server.url, n, stop, valid[n], poisoned))
               for n in range(CLIENTS)]  # fmt: skip
    epochs = [Epoch("1", moved=0.0, seen=0.0)]
    began = time.monotonic()
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as ops:
            for k, (action, version) in enumerate(MOVES, start=1):
                _wait(lambda k=k: sum(map(len, valid)) >= k * VALID / (len(MOVES) + 1), began)
                moved = time.monotonic()
                if action == "promote":
                    change = registry.promote("toy", version, reason=f"soak move {k}")
                else:
                    change = registry.rollback("toy", reason=f"soak move {k}")
                epochs.append(Epoch(change.to_version, moved))
                _wait(lambda v=change.to_version: ops.get("/ready").json().get("version") == v,
                      began)  # fmt: skip
                epochs[-1].seen = time.monotonic()
            _wait(lambda: sum(map(len, valid)) >= VALID, began)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        took = time.monotonic() - began
        out, err = server.stop()
    assert server.proc.returncode in (0, -signal.SIGTERM), err
    answers = [a for mine in valid for a in mine]
    latencies = sorted(a.ended - a.started for a in answers)
    p99_ms = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    seen = [_epochs_of(mine, epochs) for mine in valid]
    figures = (f"{len(answers):,} valid and {len(poisoned):,} poison requests from {CLIENTS} "
               f"clients in {took:.1f} s: {(len(answers) + len(poisoned)) / took:,.0f} requests/s, "
               f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99_ms:.1f} ms; "
               f"{len(MOVES)} alias moves, {len({e for s in seen for e in s}) - 1} swaps seen, "
               f"each client saw at least {min(len(set(s)) for s in seen) - 1}")  # fmt: skip
    print(f"\nsoak: {figures}")

    assert len(answers) >= VALID and len(poisoned) >= VALID / POISON_EVERY / 2, figures
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} valid requests failed, e.g. {failed[:3]}; {figures}"
    wrong = [(got, want) for got, want in poisoned if got != want]
    assert not wrong, f"{len(wrong)} poison requests not refused as expected: {wrong[:5]}"
    # Versions never go back in time: each answer belongs to an epoch of its version that
    # overlaps the request, and per client those epochs never decrease.
    for n, mine in enumerate(seen):
        assert all(e is not None for e in mine), f"client {n}: a version outside its epochs"
        assert mine == sorted(mine), f"client {n} went back from an epoch to an earlier one"
    assert {e for s in seen for e in s} == set(range(len(epochs))), "a swap was never seen"
    # The same rows and version give the same predictions, and the versions differ.
    by_input: dict[tuple[str, int], set[tuple[float, ...]]] = {}
    for a in answers:
        by_input.setdefault((a.version, a.rows), set()).add(a.predictions)
    assert all(len(p) == 1 for p in by_input.values()), "a version answered two ways"
    one_row = {p for (_, rows), answered in by_input.items() if rows == 1 for p in answered}
    assert len(one_row) == 3

    lake = load_project(soak_root).lake
    logged, _ = lake.read("predictions_toy", columns=["request_id", "version"])
    logged = logged[logged.request_id.str.startswith("soak-")]
    counts = logged.groupby(["request_id", "version"]).size().to_dict()
    lost = [a for a in answers if counts.get((a.request_id, a.version)) != a.rows]
    assert not lost, f"{len(lost)} of {len(answers)} answers not in the log as answered: {lost[:3]}"
    assert len(logged) == sum(a.rows for a in answers)
    assert "Traceback" not in out + err


def _wait(condition, began: float) -> None:
    while not condition():
        assert time.monotonic() - began < DEADLINE_S, "the soak ran out of time"
        time.sleep(0.02)


def _epochs_of(answers: list[Answer], epochs: list[Epoch]) -> list[int | None]:
    """For each answer, the latest epoch with its version that overlaps the request: it
    starts (`moved`) before the answer came and the next one was seen served after the
    request went out. None: no such epoch, the answer's version was not the alias's then."""
    found: list[int | None] = []
    for a in answers:
        candidates = [k for k, e in enumerate(epochs) if e.version == a.version
                      and e.moved <= a.ended
                      and (k + 1 == len(epochs) or epochs[k + 1].seen >= a.started)]  # fmt: skip
        found.append(max(candidates, default=None))
    return found
