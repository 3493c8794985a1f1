"""A bounded client of a live service: one request at a time on a keep-alive connection,
a pause between requests, each answer's status, model version and latency kept, so the
demo can show that swapping champions failed no request. The answers of every run are
appended to one file in the demo's home, which the demo's report charts."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from esteira.cicd.service import HOST, Service, encoded, exchange

TRAFFIC_FILE = "demo-traffic.jsonl"
"""In the demo's home: one answer a line, with when its run's traffic started."""


@dataclass(frozen=True)
class Answer:
    at: float
    """Seconds since the traffic started."""
    status: int
    version: str
    latency_ms: float
    error: str = ""


@dataclass
class Traffic:
    """Requests `bodies` (in turn) to `service` every `pause_s`, at most `limit`, from a
    thread, until stopped."""

    service: Service
    bodies: list[Any]
    pause_s: float = 0.05
    limit: int = 20_000
    answers: list[Answer] = field(default_factory=list)
    started: float = 0.0
    """When the traffic started, in seconds since the epoch (`Answer.at` counts from it)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._send, name="esteira-demo-traffic",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def versions(self) -> list[str]:
        """The versions that answered, in the order they first did."""
        return list(dict.fromkeys(a.version for a in self.answers if a.version))

    def _send(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.service.port, timeout=30)
        started, self.started = time.perf_counter(), time.time()
        try:
            for i in range(self.limit):
                if self._stop.wait(self.pause_s):
                    return
                body = encoded(self.bodies[i % len(self.bodies)])
                began = time.perf_counter()
                try:
                    status, answer = exchange(connection, "POST", "/predict", body)
                    version = str(answer.get("version", "")) if isinstance(answer, dict) else ""
                    error = "" if status == 200 else str(answer)[:200]
                except (OSError, http.client.HTTPException) as e:
                    connection.close()  # the next request opens a new connection
                    status, version, error = 0, "", f"{type(e).__name__}: {e}"
                took_ms = (time.perf_counter() - began) * 1000
                self.answers.append(Answer(began - started, status, version, took_ms, error))
        finally:
            connection.close()


@dataclass(frozen=True)
class Session:
    """One run's traffic: when it started (seconds since the epoch) and its answers."""

    started: float
    answers: list[Answer]


def keep(traffic: Traffic, path: Path) -> None:
    """Append `traffic`'s answers to `path` (a rerun keeps the earlier runs')."""
    if not traffic.answers:
        return
    lines = "".join(
        json.dumps({"started": round(traffic.started, 3), **asdict(a), "at": round(a.at, 4),
                    "latency_ms": round(a.latency_ms, 3)}) + "\n"
        for a in traffic.answers
    )  # fmt: skip
    with path.open("a", encoding="utf-8") as kept:
        kept.write(lines)  # one write: a crash leaves at most a torn last line


def sessions(path: Path) -> list[Session]:
    """The answers kept in `path`, by run, oldest first (a torn line is skipped)."""
    runs: dict[float, list[Answer]] = {}
    if not path.exists():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            fields = json.loads(line)
            started = float(fields.pop("started"))
            answer = Answer(**fields)
        except (ValueError, TypeError, KeyError):
            continue
        runs.setdefault(started, []).append(answer)
    return [Session(started, answers) for started, answers in sorted(runs.items())]
