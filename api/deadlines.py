"""Slow clients: each request must arrive whole (head and body) within a deadline, or it is answered 408 and
its connection closed; and connections beyond a cap are refused at once, before they hold a descriptor.

uvicorn has neither: it arms no timer while a request's head arrives, and its `limit_concurrency` counts
connections only once a head is complete. So `ledger serve` runs uvicorn's httptools protocol with the
head's deadline and the cap added (DeadlineProtocol), and the application with ReadDeadline, which holds the
body to the same deadline: the protocol starts it at the request's first byte and hands it on in the scope.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# scope["extensions"][EXTENSION]: {"at": the time.monotonic() to read the request by}, set by DeadlineProtocol;
# ReadDeadline adds "timed_out": True when it answers 408, and the protocol then closes the connection.
EXTENSION = "ledger.read_deadline"
LINGER_SECONDS = 2.0  # after a 408, what the client still sends is read and dropped for this long, at most


def _error(detail: str) -> bytes:
    return orjson.dumps({"error": "http", "detail": detail})  # as the API's other HTTP errors


def _late(seconds: float) -> bytes:
    return _error(f"the request was not received within {seconds:g} s")


def _answer(status: bytes, body: bytes) -> bytes:
    """A whole response, written by the protocol itself: no application has the request."""
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class RequestTimedOut(Exception):
    """The request's body did not arrive by its deadline."""


class ReadDeadline:
    """ASGI middleware: a body that has not all arrived by the request's deadline is answered 408."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = scope.get("extensions", {}).get(EXTENSION)
        deadline = given["at"] if given else time.monotonic() + self.seconds  # served without DeadlineProtocol
        read, started = False, False

        async def receive_by_deadline() -> Any:
            nonlocal read
            if read:  # the body is in; what comes next (a disconnect) is waited for without a deadline
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise RequestTimedOut from None
            read = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_started(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_by_deadline, send_started)
        except RequestTimedOut:
            if started:
                raise
            # The connection is closed after the answer: the rest of the body must not be read as a request.
            headers = [(b"content-type", b"application/json")]
            if given:
                given["timed_out"] = True  # DeadlineProtocol closes it, without losing the answer to a reset
            else:
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": 408, "headers": headers})
            await send({"type": "http.response.body", "body": _late(self.seconds)})


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request's head and a cap on connections.

    The deadline starts when the connection opens (its first request) or at the first byte after the last
    response (the next one); once the head is in, ReadDeadline holds the body to the same moment. A
    connection that sent nothing is simply closed; one that sent part of a head is answered 408. Idle
    keep-alive connections are uvicorn's own `timeout_keep_alive`.

    After a 408 the connection is closed lingering: closed at once with unread bytes from the client, the
    kernel would reset it and the answer could be lost. So the answer goes out with a FIN, and what the
    client still sends is dropped until it closes too, or LINGER_SECONDS pass.
    """

    def __init__(self, *args: Any, read_seconds: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_seconds, self.max_connections = read_seconds, max_connections
        self.read_by, self.partial, self.lingering = 0.0, False, False
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_answer(b"503 Service Unavailable", _error("too many connections; try again later")))
            transport.close()
            return
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        if self.head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._start_deadline()  # the first byte of the next request on this connection
        self.partial = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._stop_deadline()
        self.scope["extensions"] = {**self.scope.get("extensions", {}), EXTENSION: {"at": self.read_by}}
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if self.cycle is not None and self.cycle.scope.get("extensions", {}).get(EXTENSION, {}).get("timed_out"):
            self._close_lingering()  # a body that came too late: nothing more is read from this connection
            return
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self.read_by, self.partial = time.monotonic() + self.read_seconds, False
        self.head_timer = self.loop.call_later(self.read_seconds, self._head_timed_out)

    def _stop_deadline(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if not self.partial:
            self.transport.close()
            return
        self.transport.write(_answer(b"408 Request Timeout", _late(self.read_seconds)))
        self._close_lingering()

    def _close_lingering(self) -> None:
        if self.transport.is_closing() or self.lingering:
            return
        self.lingering = True
        self.transport.resume_reading()  # uvicorn may have paused it for a large body
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
