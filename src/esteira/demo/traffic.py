"""A bounded client of a live service: one request at a time on a keep-alive connection,
a pause between requests, each answer's status, model version and latency kept, so the
demo can show that swapping champions failed no request."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from esteira.cicd.service import HOST, Service, encoded, exchange


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
        started = time.perf_counter()
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
