"""QuietTimeouts: the application of a request that the server cut off at its deadline ends without an error
to log; any other disconnect or error still reaches the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from api.deadlines import EXTENSION, QuietTimeouts


async def reads_its_body(scope: Any, receive: Any, send: Any) -> None:
    await Request(scope, receive).body()


async def disconnect() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def run(app: Any, extensions: dict[str, Any]) -> None:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"",
             "extensions": extensions}
    asyncio.run(app(scope, disconnect, None))


def test_the_disconnect_of_a_request_cut_off_at_its_deadline_ends_the_application_quietly() -> None:
    run(QuietTimeouts(reads_its_body), {EXTENSION: {"timed_out": True}})


@pytest.mark.parametrize("extensions", [{}, {EXTENSION: {}}], ids=["another-server", "in-time"])
def test_any_other_disconnect_still_reaches_the_server(extensions: dict[str, Any]) -> None:
    with pytest.raises(ClientDisconnect):
        run(QuietTimeouts(reads_its_body), extensions)


def test_other_errors_still_reach_the_server() -> None:
    async def fails(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run(QuietTimeouts(fails), {EXTENSION: {"timed_out": True}})
