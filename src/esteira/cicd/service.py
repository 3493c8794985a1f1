"""A model version served for the CD gates: a real `esteira serve` process on a free
loopback port, pinned to that version, logging nothing; and the HTTP calls its smoke and
load tests make (the standard library's client: one keep-alive connection per client)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esteira.config import Settings, store_variables
from esteira.errors import EsteiraError

HOST = "127.0.0.1"  # a load test never targets anything but loopback
STOP_GRACE_S = 20.0


class ServiceError(EsteiraError):
    """A service the CD gates started did not come up."""


@dataclass(frozen=True)
class Service:
    model: str
    version: str
    port: int

    def call(
        self, method: str, path: str, body: Any = None, timeout_s: float = 30.0
    ) -> tuple[int, Any]:
        """One request on a new connection: status and the decoded JSON answer (or text)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout_s)
        try:
            return exchange(connection, method, path, encoded(body))
        finally:
            connection.close()


@dataclass
class LoadFigures:
    """What a bounded load test measured on one service."""

    sent: int = 0
    errors: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str = ""

    def summary(self) -> dict[str, Any]:
        import numpy as np

        done = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        return {
            "requests": self.sent,
            "errors": self.errors,
            "error_rate": self.errors / self.sent if self.sent else 1.0,
            "requests_per_s": round(len(self.latencies_ms) / self.wall_s, 1) if self.wall_s else 0,
            "p50_ms": round(float(np.percentile(done, 50)), 2),
            "p99_ms": round(float(np.percentile(done, 99)), 2),
            **({"first_error": self.first_error} if self.first_error else {}),
        }


@contextmanager
def served(
    root: Path, settings: Settings, model: str, versions: list[str], timeout_s: float
) -> Iterator[dict[str, Service]]:
    """Each of `versions` of `model` served by `esteira serve` in its own child process, in
    the same environment and stores as `settings`, until the block ends. They load their
    models side by side; all are ready when it yields."""
    with ExitStack() as stack:
        started = []
        for version in versions:
            service = Service(model, version, free_port())
            pinned = ["--version", version, "--no-log", "--watch", "3600"]
            started.append((service, *_spawn(stack, root, settings, service, pinned)))
        deadline = time.monotonic() + timeout_s
        for service, process, output in started:
            _wait_ready(service, process, output, deadline, timeout_s)
        yield {service.version: service for service, _, _ in started}


@contextmanager
def following(
    root: Path, settings: Settings, model: str, alias: str, watch_s: float, timeout_s: float
) -> Iterator[Service]:
    """`esteira serve` of whichever version `alias` names, looking again every `watch_s`
    seconds (a promotion swaps it in while it answers), logging what it answers."""
    with ExitStack() as stack:
        service = Service(model, alias, free_port())
        watched = ["--alias", alias, "--watch", f"{watch_s:g}"]
        process, output = _spawn(stack, root, settings, service, watched)
        _wait_ready(service, process, output, time.monotonic() + timeout_s, timeout_s)
        yield service


def _spawn(
    stack: ExitStack, root: Path, settings: Settings, service: Service, options: list[str]
) -> tuple[subprocess.Popen, Any]:
    """The service's process, stopped when `stack` closes, its output kept for errors."""
    output = stack.enter_context(tempfile.TemporaryFile(mode="w+"))  # noqa: SIM115 (closed by stack)
    command = [
        sys.executable, "-m", "esteira", "serve", "-p", str(root), "--model", service.model,
        "--port", str(service.port), "--host", HOST, *options,
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **store_variables(settings)},
                               stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    stack.callback(_stop, process)
    return process, output


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def load_test(
    service: Service, body: Any, requests: int, clients: int, deadline_s: float
) -> LoadFigures:
    """Send `requests` POST /predict with `body` from `clients` concurrent clients, each on
    its own keep-alive connection, stopping early at `deadline_s`."""
    payload = encoded(body)
    figures = LoadFigures()
    lock = threading.Lock()
    started = time.perf_counter()
    stop_at = started + deadline_s

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, service.port, timeout=30)
        try:
            while time.perf_counter() < stop_at:
                with lock:
                    if figures.sent >= requests:
                        return
                    figures.sent += 1
                began = time.perf_counter()
                try:
                    status, answer = exchange(connection, "POST", "/predict", payload)
                    error = "" if status == 200 else f"HTTP {status}: {str(answer)[:200]}"
                except (OSError, http.client.HTTPException) as e:
                    connection.close()  # the next request opens a new connection
                    error = f"{type(e).__name__}: {e}"
                took_ms = (time.perf_counter() - began) * 1000
                with lock:
                    if error:
                        figures.errors += 1
                        figures.first_error = figures.first_error or error
                    else:
                        figures.latencies_ms.append(took_ms)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures.wall_s = time.perf_counter() - started
    return figures


def exchange(
    connection: http.client.HTTPConnection, method: str, path: str, payload: bytes | None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


def encoded(body: Any) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


def _wait_ready(
    service: Service, process: subprocess.Popen, output: Any, deadline: float, timeout_s: float
) -> None:
    """Until /ready answers 200; fails with the service's own words if it exits or is not
    ready by `deadline` (a busy machine loads a model in tens of seconds)."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"the service of version {service.version} exited with code "
                               f"{process.returncode}: {_tail(output)}")  # fmt: skip
        try:
            status, _ = service.call("GET", "/ready", timeout_s=5)
        except (OSError, http.client.HTTPException):
            status = 0  # not listening yet
        if status == 200:
            return
        time.sleep(0.2)
    raise ServiceError(
        f"the service of version {service.version} was not ready after {timeout_s:g} s "
        f"([cd] timeout_s): {_tail(output)}"
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(output: Any, lines: int = 5) -> str:
    output.flush()
    output.seek(0)
    text = output.read().strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"
