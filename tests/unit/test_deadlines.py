"""ReadDeadline on its own (as under a server without DeadlineProtocol): a body that does not arrive in time is
answered 408 and the connection closed; one that does is handed on whole, with no deadline after it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from api.deadlines import EXTENSION, ReadDeadline


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = await Request(scope, receive).body()
    await PlainTextResponse(body.decode())(scope, receive, send)


def call(app: Any, pieces: list[tuple[float, bytes]], scope: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one request through `app`; its body arrives as (delay, bytes) pieces. Returns what was sent."""
    sent: list[dict[str, Any]] = []
    queue = list(pieces)

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(3600)  # after the body: a disconnect that never comes
        delay, chunk = queue.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    request = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"", **(scope or {})}
    asyncio.run(asyncio.wait_for(app(request, receive, send), 10))
    return sent


def test_a_body_that_has_not_all_arrived_by_the_deadline_is_answered_408_and_the_connection_closed() -> None:
    started = time.monotonic()
    sent = call(ReadDeadline(echo, seconds=0.3), [(0.1, b"a"), (0.1, b"b"), (5, b"c")])
    assert time.monotonic() - started < 1
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"not received within 0.3 s" in sent[1]["body"]


def test_a_body_that_arrives_in_time_is_handed_on_whole() -> None:
    sent = call(ReadDeadline(echo, seconds=1), [(0.1, b"a"), (0.1, b"b")])
    assert (sent[0]["status"], sent[1]["body"]) == (200, b"ab")


def test_the_deadline_given_by_the_server_counts_from_the_requests_first_byte() -> None:
    # The head took most of it: 0.2 s are left, not the 5 s of a fresh deadline.
    scope = {"extensions": {EXTENSION: {"at": time.monotonic() + 0.2}}}
    sent = call(ReadDeadline(echo, seconds=5), [(0.5, b"late")], scope)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") not in sent[0]["headers"]  # the server's protocol closes it
    assert scope["extensions"][EXTENSION]["timed_out"] is True
