"""Slow clients: each request must arrive whole, head and body, within a deadline of its first byte, or it is
answered 408 and its connection closed; and connections beyond a cap are refused at once.

uvicorn has neither: it arms no timer while a request arrives, and its `limit_concurrency` counts a
connection only once its head is in. So `ledger serve` runs uvicorn's httptools protocol with both added
(DeadlineProtocol). One timer per serving process looks at every connection's deadline a few times a second:
a timer per request, or one around each read of the body, cost more than the rest of a notification's HTTP
handling. The application is wrapped in QuietTimeouts: a request cut off by its deadline ends as a
disconnect, and that is no error to log.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# scope["extensions"][EXTENSION]: {"timed_out": True} once DeadlineProtocol has cut the request off.
EXTENSION = "ledger.read_deadline"
LINGER_SECONDS = 2.0  # after a 408, what the client still sends is read and dropped for this long, at most
_WATCHED: weakref.WeakSet[ServerState] = weakref.WeakSet()


class QuietTimeouts:
    """ASGI middleware: the application of a request that DeadlineProtocol cut off sees a disconnect; its
    ClientDisconnect is expected there, not an error for the server to log."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            if not scope.get("extensions", {}).get(EXTENSION, {}).get("timed_out"):
                raise


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request and a cap on connections.

    The deadline starts when the connection opens (for its first request) or at the first byte after the
    last response (for the next one), and ends when the body is in. Missed: a connection that sent nothing is
    closed; one that sent part of a request is answered 408 (unless its answer had begun), and its
    application sees a disconnect. Idle keep-alive connections are uvicorn's own `timeout_keep_alive`.

    After a 408 the connection is closed lingering: closed at once with unread bytes from the client, the
    kernel would reset it and the answer could be lost. So the answer goes out with a FIN, and what the
    client still sends is dropped until it closes too, or LINGER_SECONDS pass.
    """

    def __init__(self, *args: Any, read_seconds: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_seconds, self.max_connections = read_seconds, max_connections
        self.read_by = 0.0  # time.monotonic() by which the request being received must be in; 0: none is
        self.partial = self.in_body = self.lingering = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_answer(b"503 Service Unavailable", _error("too many connections; try again later")))
            transport.close()
            return
        _watch(self.server_state, self.loop, min(0.5, self.read_seconds / 4))
        self._expect_request()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        if not self.read_by and (self.cycle is None or self.cycle.response_complete):
            self._expect_request()  # the first byte of the next request on this connection
        self.partial = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.in_body = True
        self.scope["extensions"] = {**self.scope.get("extensions", {}), EXTENSION: {}}
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.read_by, self.in_body = 0.0, False
        super().on_message_complete()

    def _expect_request(self) -> None:
        self.read_by, self.partial, self.in_body = time.monotonic() + self.read_seconds, False, False

    def expire(self) -> None:
        """The request being received was not in by its deadline."""
        self.read_by = 0.0
        if self.transport.is_closing():
            return
        if not self.partial:
            self.transport.close()
            return
        cycle = self.cycle if self.in_body else None
        if cycle is None or not cycle.response_started:
            self.transport.write(_answer(b"408 Request Timeout",
                                         _error(f"the request was not received within {self.read_seconds:g} s")))
        if cycle is not None:
            # As uvicorn does when a client goes away: the application's next read is a disconnect, and
            # whatever it still sends is dropped.
            cycle.scope["extensions"][EXTENSION]["timed_out"] = True
            cycle.disconnected = True
            cycle.message_event.set()
        self._close_lingering()

    def _close_lingering(self) -> None:
        self.lingering = True
        self.transport.resume_reading()  # uvicorn may have paused it for a large body
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _watch(state: ServerState, loop: Any, every: float) -> None:
    """Look at every connection's deadline each `every` seconds, from now on, for this server."""
    if state in _WATCHED:
        return
    _WATCHED.add(state)

    def sweep() -> None:
        try:
            now = time.monotonic()
            for connection in list(state.connections):
                if isinstance(connection, DeadlineProtocol) and 0 < connection.read_by <= now:
                    connection.expire()
        finally:
            loop.call_later(every, sweep)

    loop.call_later(every, sweep)


def _error(detail: str) -> bytes:
    return orjson.dumps({"error": "http", "detail": detail})  # as the API's other HTTP errors


def _answer(status: bytes, body: bytes) -> bytes:
    """A whole response, written by the protocol itself."""
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
