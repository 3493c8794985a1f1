"""The prediction service.

    POST /predict        {"records": [{...}, ...]} -> predictions, with the model version;
                         rows carry the model's inputs, or its feature service's fields
    GET  /health         the process is up
    GET  /ready          a model is loaded (503 with the reason until then)
    GET  /model          name, version, alias, signature, loaded at
    GET  /metrics        Prometheus text: requests by status and reason, latency, predictions,
                         version, model-load failures, prediction-log backlog
    POST /admin/reload   check the registry now (Authorization: Bearer $ESTEIRA_ADMIN_TOKEN)
    GET  /docs           Swagger UI (offline); /openapi.json describes /predict's body

The port answers from the start: the first model loads in the background (/ready says 503
with the reason until then), and the service starts even before its alias points at a
version, becoming ready when a champion appears; it follows the alias from then on (hot
swap). Limits on connections, headers and bodies: `serving.limits`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.background import BackgroundTask

from esteira.config import ServingSection
from esteira.errors import EsteiraError
from esteira.models import LoadedModel
from esteira.runtime import limit_this_thread
from esteira.serving.batching import Batcher
from esteira.serving.inputs import check_rows, complete
from esteira.serving.limits import RequestLimits
from esteira.serving.loaded import ModelSlot
from esteira.serving.metrics import Observed, ServiceMetrics, note_reason
from esteira.serving.openapi import add_offline_docs, describe_predict_body
from esteira.serving.predlog import Logged, PredictionLog, now
from esteira.serving.requests import BadRequest, parse

if TYPE_CHECKING:
    from esteira.project import Project

ADMIN_TOKEN_ENV = "ESTEIRA_ADMIN_TOKEN"
PREDICT_REASONS = {400: "malformed_body", 413: "too_many_rows", 422: "invalid_rows",
                   500: "model_failed", 503: "not_ready"}  # fmt: skip
"""What /metrics counts a /predict refusal under, when its handler names nothing finer."""


@dataclass(frozen=True)
class ServeConfig:
    model: str
    alias: str = "champion"
    shadow_alias: str | None = None
    """Also score every request with this alias (e.g. challenger); logged, never returned."""
    max_rows: int = 10_000
    watch_s: float = 5.0
    log_predictions: bool = True
    flush_s: float = 1.0
    threads: int | None = None
    """Threads one prediction may use (OpenMP/BLAS); None: `[runtime] serving_threads`.
    Small requests gain nothing from threads; the cores serve concurrent requests instead."""
    version: str | None = None
    """Serve this version and never swap (the CD gates test a candidate so); None: follow
    `alias`."""
    canary: str | None = None
    """Answer a stable share of requests with this alias (e.g. challenger), chosen by a hash
    of the request id; the rest with `alias`. Removing the alias ends the canary."""
    canary_percent: float = 0.0
    limits: ServingSection = field(default_factory=ServingSection)
    """Body size and read time, header count (the connection's limits: `esteira serve`)."""


def create_app(
    project: Project,
    config: ServeConfig,
    log: Any = print,
    metrics: ServiceMetrics | None = None,
) -> FastAPI:
    """Build the service; raises NotFound when the model name is not registered at all.
    `metrics`: where to count (`esteira serve` also counts the connection's refusals
    there)."""
    from esteira.registry import Registry

    Registry(project)._require_model(config.model)  # a typo fails at start, not per request
    slot = ModelSlot(project, config.model, config.alias, log, config.version)
    shadow = (
        ModelSlot(project, config.model, config.shadow_alias, log) if config.shadow_alias else None
    )
    canary = (
        ModelSlot(project, config.model, config.canary, log, optional=True)
        if config.canary
        else None
    )
    table = f"predictions_{config.model}"
    predictions = PredictionLog(project.lake, table, config.model,
                                project.settings.home / "predlog" / table,
                                flush_s=config.flush_s, log=log)  # fmt: skip
    metrics = metrics or ServiceMetrics()
    slots = [s for s in (slot, shadow, canary) if s is not None]
    metrics.watch(slots, predictions if config.log_predictions else None)
    batcher = Batcher(project.features)
    stop = threading.Event()

    threads = config.threads or project.settings.runtime.serving_threads

    warm = threading.Event()  # the first loads are done, the predicting threads set up

    async def first_load() -> None:
        """In the background: the port answers /health and /ready while a model loads."""
        for s in slots:
            try:
                await asyncio.to_thread(s.refresh)
            except Exception as e:  # the registry is unreachable: the watcher tries again
                s.error = f"reading the registry failed: {type(e).__name__}: {e}"
                log(s.error)
            s.watch(stop, config.watch_s)
        # OpenMP's limit holds per thread: the threads that predict take it when they start,
        # after the first model loaded its libraries (`esteira serve` also sets it for
        # libraries loaded later, through their environment variables).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="esteira-predict",
                               initializer=limit_this_thread, initargs=(threads,))
        )  # fmt: skip
        warm.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(first_load())
        if config.log_predictions:  # recovers what a killed service left: may take a while
            await asyncio.to_thread(predictions.start)
        batcher.start()
        yield
        loading.cancel()
        await batcher.stop()
        stop.set()
        if config.log_predictions:
            predictions.close()  # nothing served is lost on a clean shutdown
            log(f"prediction log: {predictions.written} rows in {predictions.table}")

    app = FastAPI(title=f"esteira: {config.model}", lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # fmt: skip
    app.state.slot, app.state.predictions = slot, predictions
    # Outermost first: Observed sees the limits' refusals too.
    app.add_middleware(RequestLimits, limits=config.limits)
    app.add_middleware(Observed, metrics=metrics, routes=app.routes, log=log)
    describe_predict_body(app, slot, config.max_rows)
    add_offline_docs(app)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        model = slot.current  # this request keeps this model, whatever a swap does meanwhile
        alias = config.alias
        routed = canary.current if canary is not None and model is not None else None
        if routed is not None and in_canary(request_id, config.canary_percent):
            model, alias = routed, config.canary
        if model is None:
            return _answer(503, {"error": "no model loaded", "reason": slot.error})
        try:
            checked = check_rows(model, parse(await request.body(), config.max_rows))
        except BadRequest as bad:
            return _answer(bad.status, bad.body())
        try:
            values, inputs = await batcher.predict(model, checked)
        except BadRequest as bad:
            return _answer(bad.status, bad.body())
        except EsteiraError as e:  # the feature store is not ready for this model
            return _answer(503, {"error": str(e)})
        except Exception as e:  # the model failed: on record, so a canary's errors count
            error = f"version {model.version} failed to predict: {type(e).__name__}"
            if config.log_predictions:
                latency_ms = (time.perf_counter() - started) * 1000
                failed = [None] * len(checked.rows)
                predictions.add(Logged(request_id, now(), model.version, latency_ms, checked.rows,
                                       failed, error=f"{error}: {e}"[:500]))  # fmt: skip
            # Said, not just done: a client reusing the connection would otherwise be reset.
            return _answer(500, {"error": error, "request_id": request_id},
                           {"connection": "close"})  # fmt: skip
        for view, missed in inputs.misses.items():
            metrics.misses.labels(view).inc(missed)
        latency_ms = (time.perf_counter() - started) * 1000
        if config.log_predictions:
            predictions.add(
                Logged(request_id, now(), model.version, latency_ms, inputs.logged, values)
            )
        metrics.predictions.inc(len(values))
        metrics.version.labels(config.model, alias).set(float(model.version))
        body = {"request_id": request_id, "model": model.name, "version": model.version,
                "predictions": values}  # fmt: skip
        missed = {view: n for view, n in inputs.misses.items() if n}
        if missed:  # rows predicted without these views' features (unknown entity or stale)
            body["feature_misses"] = missed
        response = _answer(200, body, {"x-model-version": model.version})
        if shadow is not None and shadow.current is not None and config.log_predictions:
            # After the response is sent: the shadow never slows or changes an answer.
            response.background = BackgroundTask(_shadow, shadow.current, checked.rows, request_id)
        return response

    def _shadow(challenger: LoadedModel, rows: list[Any], request_id: str) -> None:
        started = time.perf_counter()
        try:
            frame, (share,) = complete(challenger, [check_rows(challenger, rows)], project.features)
        except (BadRequest, EsteiraError) as e:  # its inputs differ: nothing to compare
            log(f"shadow version {challenger.version} cannot score request {request_id}: {e}")
            return
        values = challenger.predict(frame)
        latency_ms = (time.perf_counter() - started) * 1000
        predictions.add(Logged(request_id, now(), challenger.version, latency_ms, share.logged,
                               values, shadow=True))  # fmt: skip

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        model = slot.current
        if model is None or not warm.is_set():
            reason = slot.error or "setting up the prediction threads"
            return JSONResponse({"ready": False, "reason": reason}, status_code=503)
        return JSONResponse({"ready": True, "version": model.version, "last_error": slot.error})

    @app.get("/model")
    async def model_info() -> JSONResponse:
        model = slot.current
        if model is None:
            return JSONResponse({"error": "no model loaded", "reason": slot.error}, status_code=503)
        described = model.describe()
        if canary is not None:
            version = canary.current.version if canary.current else None
            described["canary"] = {"alias": config.canary, "version": version,
                                   "percent": config.canary_percent}  # fmt: skip
        return JSONResponse(described)

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload")
    async def reload(request: Request) -> JSONResponse:
        token = os.environ.get(ADMIN_TOKEN_ENV)
        if not token:
            return JSONResponse({"error": f"admin is off: set {ADMIN_TOKEN_ENV} to enable it"},
                                status_code=403)  # fmt: skip
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer"  # schemes are case-insensitive (RFC 9110)
        # Compared whatever the scheme, so a wrong one takes as long as a wrong token.
        if not hmac.compare_digest(given.strip().encode(), token.encode()) or not bearer:
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        swapped = await asyncio.to_thread(slot.refresh, True)  # a failed version's backoff too
        current = slot.current.version if slot.current else None
        return JSONResponse({"swapped": swapped, "version": current, "error": slot.error})

    return app


def in_canary(request_id: str, percent: float) -> bool:
    """Whether a request goes to the canary: the same id always gets the same answer, and
    `percent` of ids do."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100


def _answer(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    reason: str | None = None,
) -> JSONResponse:
    """A /predict answer; `reason` (default: by status) is what /metrics counts it under."""
    if status >= 400:
        note_reason(reason or PREDICT_REASONS.get(status, f"status_{status}"))
    return JSONResponse(body, status_code=status, headers=headers)
