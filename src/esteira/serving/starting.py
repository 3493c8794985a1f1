"""The port answers from the first second.

`esteira serve` opens its port before anything heavy is imported or read: uvicorn runs
`Starting`, a small ASGI app that builds the service (the project's code, the registry,
the prediction log's recovery) in a thread meanwhile. Until the service is built it
answers `/health` 200 and `/ready` 503 with what it is doing, and any other request 503
with `Retry-After`; then it runs the service's lifespan and hands it every request. A
failure to build (an unknown model) stops the server, and `esteira serve` exits with it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esteira.serving.metrics import ServiceMetrics

STARTING = "starting: loading the project and reading the model registry"


class Starting:
    def __init__(
        self, build: Callable[[], Any], stop: Callable[[], None], metrics: ServiceMetrics
    ) -> None:
        self._build = build
        self._stop = stop
        self._metrics = metrics
        self.app: Any = None
        """The service, once built (a FastAPI app whose lifespan is running)."""
        self.failure: BaseException | None = None
        """Why the service could not be built; the server stops."""
        self._service_lifespan = AsyncExitStack()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._answer_while_starting(scope, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        setting_up: asyncio.Task | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                setting_up = asyncio.create_task(self._set_up())
                await send({"type": "lifespan.startup.complete"})  # the port opens now
            elif message["type"] == "lifespan.shutdown":
                if setting_up is not None and not setting_up.done():
                    setting_up.cancel()
                await self._service_lifespan.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _set_up(self) -> None:
        try:
            app = await _in_daemon_thread(self._build)
            await self._service_lifespan.enter_async_context(app.router.lifespan_context(app))
        except Exception as e:
            self.failure = e
            self._stop()
            return
        self.app = app

    async def _answer_while_starting(self, scope: dict[str, Any], send: Any) -> None:
        path = scope["path"]
        if path == "/health":
            status, body = 200, {"status": "ok"}
        elif path == "/ready":
            status, body = 503, {"ready": False, "reason": STARTING}
        else:
            status, body = 503, {"error": STARTING}
        route = path if path in ("/health", "/ready") else "other"
        self._metrics.requests.labels(route, str(status), "starting").inc()
        encoded = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(encoded))]  # fmt: skip
        if status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})


async def _in_daemon_thread(work: Callable[[], Any]) -> Any:
    """`work()` in a daemon thread: a Ctrl-C during start-up does not wait for it (as
    `asyncio.to_thread` would, for the project's imports)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def run() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (work(), None)
        except BaseException as e:  # handed to the loop, raised by the await below
            outcome = (None, e)
        with suppress(RuntimeError):  # the loop closed meanwhile: the server stopped
            loop.call_soon_threadsafe(_settle, done, *outcome)

    threading.Thread(target=run, name="esteira-serve-setup", daemon=True).start()
    return await done


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled: the server is stopping
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
