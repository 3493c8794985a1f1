"""The service's resource limits (`[serving]` in esteira.toml), enforced where each is
cheapest:

- on the connection, before a request exists (uvicorn's httptools protocol, extended
  here): the request line and headers must fit in `max_header_bytes` and arrive within
  `header_timeout_s`, else 431 or 408 and the connection is closed; a slow client cannot
  hold a connection open by trickling a header a byte at a time;
- in uvicorn: `max_connections` (503 beyond it) and `keep_alive_s`;
- per request (`RequestLimits`, ASGI middleware): at most `max_headers` fields (431), a body
  of at most `max_body_bytes` (413, from Content-Length before reading anything and again
  while it streams in) that arrives whole within `read_timeout_s` (408: a body that
  promises more than it sends no longer holds its connection forever).

After a request with a large body, the memory its parsing took is handed back to the
system (glibc keeps freed memory otherwise, and the service would stay at its peak).

Refusals that read only part of a body close the connection (`Connection: close`): the
rest of the body would otherwise be taken for the next request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from esteira.serving.metrics import note_reason

if TYPE_CHECKING:
    from esteira.config import ServingSection


LARGE_BODY_BYTES = 1024 * 1024

Refused = Callable[[int, str], None]
"""Told of a request refused on its connection: its status and reason."""


def _ignore(status: int, reason: str) -> None:
    """Nobody counts the refusals."""


def _give_back_memory() -> None:
    """Return freed heap memory to the system (glibc only; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")  # runs ldconfig: once
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


class _Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class RequestLimits:
    """ASGI middleware: header count, body size and body read time; see the module."""

    def __init__(self, app: Any, limits: ServingSection) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        try:
            _check_head(scope["headers"], limits)
        except _Refused as refused:
            await _refuse(send, refused)
            return
        deadline = asyncio.get_running_loop().time() + limits.read_timeout_s
        received = 0
        complete = False
        answered = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, complete
            if complete:  # after the body: waiting for a disconnect is not reading
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _Refused(408, "read_timeout", f"the body did not arrive whole within "
                               f"{limits.read_timeout_s:g} s; send it faster or in smaller "
                               "requests") from None  # fmt: skip
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limits.max_body_bytes:
                    raise _too_large(limits.max_body_bytes)
                complete = not message.get("more_body", False)
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _Refused as refused:
            if answered:  # too late to say why; the connection goes (see metrics.Observed)
                raise
            await _refuse(send, refused)
        finally:
            if received >= LARGE_BODY_BYTES:
                _give_back_memory()


def _check_head(headers: list[tuple[bytes, bytes]], limits: ServingSection) -> None:
    if len(headers) > limits.max_headers:
        raise _Refused(431, "too_many_headers", f"{len(headers)} header fields exceed the "
                       f"limit of {limits.max_headers}")  # fmt: skip
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                raise _Refused(400, "bad_content_length", "Content-Length is not a number")
            if int(value) > limits.max_body_bytes:
                raise _too_large(limits.max_body_bytes)


def _too_large(limit: int) -> _Refused:
    return _Refused(413, "body_too_large", f"the body exceeds the limit of {limit:,} bytes; "
                    "send fewer rows per request")  # fmt: skip


async def _refuse(send: Any, refused: _Refused) -> None:
    import json

    note_reason(refused.reason)
    body = json.dumps({"error": refused.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def uvicorn_options(limits: ServingSection, refused: Refused = _ignore) -> dict[str, Any]:
    """What uvicorn's `Config` takes to enforce the connection-level limits; `refused` is
    told of each request they refuse (its status and reason)."""
    return {
        "http": guarded_protocol(limits.max_header_bytes, limits.header_timeout_s, refused),
        "limit_concurrency": limits.max_connections,
        "timeout_keep_alive": limits.keep_alive_s,
    }


def guarded_protocol(
    max_header_bytes: int, header_timeout_s: float, refused: Refused = _ignore
) -> type:
    """uvicorn's httptools protocol, with a size and a time limit on a request's head
    (httptools itself has neither: a header flood is buffered whole, a trickled one waits
    forever), and every refusal of its own told to `refused`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_bytes = 0
        _reading_head = True
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._start_head()

        def on_headers_complete(self) -> None:
            self._reading_head = False
            self._stop_head_timer()
            limit = self.limit_concurrency  # uvicorn's test, which answers 503 itself
            if limit is not None and max(len(self.connections), len(self.tasks)) >= limit:
                refused(503, "too_many_connections")
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._reading_head and not self.transport.is_closing():
                self._head_bytes += len(data)  # all of it is head while the head is unfinished
                if self._head_bytes > max_header_bytes:
                    refused(431, "header_too_large")
                    self._close_with(b"431 Request Header Fields Too Large")

        def _start_head(self) -> None:
            self._reading_head, self._head_bytes = True, 0
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_too_slow)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self._reading_head and not self.transport.is_closing():
                refused(408, "header_timeout")
                self._close_with(b"408 Request Timeout")

        def _close_with(self, status: bytes) -> None:
            self._stop_head_timer()
            self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")  # fmt: skip
            self.transport.close()

    return GuardedHttpToolsProtocol
