"""What `/metrics` shows: every request by route, status and reason with its latency, the
rows predicted, the version served, and, read at each scrape, the model slots' load
failures and backoff and the prediction log's backlog.

`Observed` is the outermost ASGI middleware, so it sees every answer, 413 and 408 from the
limits included; a handler names why it refused a request with `note_reason`. It also
turns an exception no handler caught into a 500 that closes its connection (with
`Connection: close`, so a keep-alive client is not reset on its next request), and a
client that leaves before its answer into one INFO line.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from contextvars import ContextVar
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esteira.serving.loaded import ModelSlot
    from esteira.serving.predlog import PredictionLog

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BEFORE_ROUTING = "none"
"""The route label of a request refused before its path was read."""
CLIENT_CLOSED = 499  # nginx's convention: the client left before its answer

# One dict per request (each request runs in its own task, with its own context).
_outcome: ContextVar[dict[str, str] | None] = ContextVar("esteira_outcome", default=None)


def note_reason(reason: str) -> None:
    """Why the current request is answered as it is (`/metrics` counts it under this)."""
    outcome = _outcome.get()
    if outcome is not None:
        outcome["reason"] = reason


class ServiceMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("esteira_requests", "Requests by route, status code and reason",
                                ["route", "status", "reason"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("esteira_request_latency_seconds", "Time to answer a request, "
                                 "whatever its status", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)  # fmt: skip
        self.predictions = Counter("esteira_predictions", "Rows predicted", registry=self.registry)
        self.version = Gauge("esteira_model_version", "Version being served", ["model", "alias"],
                             registry=self.registry)  # fmt: skip
        self.misses = Counter("esteira_feature_misses", "Rows a feature view had no fresh "
                              "value for", ["view"], registry=self.registry)  # fmt: skip

    def refused(self, status: int, reason: str) -> None:
        """Count a request the connection refused before it reached the app (its head too
        large or too slow, too many connections): no route is known yet."""
        self.requests.labels(BEFORE_ROUTING, str(status), reason).inc()

    def watch(self, slots: Iterable[ModelSlot], predictions: PredictionLog | None) -> None:
        """Also report these slots and this log, read at each scrape."""
        self.registry.register(_StateCollector(list(slots), predictions))

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _StateCollector:
    """Figures that live in the slots and the log, read when scraped rather than copied."""

    def __init__(self, slots: list[ModelSlot], predictions: PredictionLog | None) -> None:
        self.slots = slots
        self.predictions = predictions

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        failures = CounterMetricFamily("esteira_model_load_failures", "Versions that failed "
                                       "to load, by alias", labels=["alias"])  # fmt: skip
        retrying = GaugeMetricFamily("esteira_model_load_retry_seconds", "Seconds until the "
                                     "next try of a version that failed to load (its backoff)",
                                     labels=["alias", "version"])  # fmt: skip
        loaded = GaugeMetricFamily("esteira_model_loaded", "1 when the alias has a model "
                                   "loaded", labels=["alias"])  # fmt: skip
        for slot in self.slots:
            failures.add_metric([slot.alias], slot.load_failures)
            loaded.add_metric([slot.alias], float(slot.current is not None))
            backoff = slot.backoff
            if backoff is not None:
                retrying.add_metric([slot.alias, backoff.version], backoff.seconds_left())
        yield from (failures, retrying, loaded)
        if self.predictions is not None:
            backlog = GaugeMetricFamily("esteira_prediction_log_backlog_rows", "Rows answered "
                                        "and not yet in the Delta table")  # fmt: skip
            backlog.add_metric([], self.predictions.backlog)
            flushed = GaugeMetricFamily("esteira_prediction_log_last_flush_timestamp_seconds",
                                        "When the log last wrote to its table (Unix time; 0: "
                                        "not yet)")  # fmt: skip
            last = self.predictions.last_flush
            flushed.add_metric([], last.timestamp() if last is not None else 0.0)
            yield from (backlog, flushed)


class Observed:
    """ASGI middleware: counts and times every request; see the module's docstring."""

    def __init__(
        self, app: Any, metrics: ServiceMetrics, routes: list[Any], log: Any = print
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        """The app's routes: a request refused before routing is counted under its path
        when that is one of theirs."""
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import ClientDisconnect

        started = time.perf_counter()
        outcome: dict[str, str] = {}
        token = _outcome.set(outcome)
        status = 0

        async def observed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except ClientDisconnect:
            status, outcome["reason"] = CLIENT_CLOSED, "client_disconnected"
            self.log(f"info: client left before its answer: {scope['method']} {scope['path']}")
        except Exception as e:
            outcome["reason"] = f"unhandled_{type(e).__name__}"
            self.log(f"error: {scope['method']} {scope['path']} failed: "
                     f"{''.join(traceback.format_exception(e)).rstrip()}")  # fmt: skip
            if not status:
                status = 500
                await _send_json(send, 500, b'{"error":"internal server error"}')
        finally:
            _outcome.reset(token)
            self._count(scope, status, outcome.get("reason"), time.perf_counter() - started)

    def _count(self, scope: dict[str, Any], status: int, reason: str | None, took: float) -> None:
        path = getattr(scope.get("route"), "path", None)
        if path is None:  # refused before routing, or no route: unknown paths share a label
            known = any(getattr(r, "path", None) == scope["path"] for r in self.routes)
            path = scope["path"] if known else "other"
        self.metrics.requests.labels(path, str(status), reason or _default_reason(status)).inc()
        self.metrics.latency.labels(path).observe(took)


def _default_reason(status: int) -> str:
    if status < 400:
        return "ok"
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "other"


async def _send_json(send: Any, status: int, body: bytes) -> None:
    """A JSON answer that also closes the connection: what follows it on the connection
    (an unread body, a broken state) cannot be trusted."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
