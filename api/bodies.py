"""Request bodies read with a size limit, chunk by chunk, so an oversized one is refused before it is held."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from ledger.domain.errors import InvalidRequest


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    """The body if it has at most `limit` bytes; BodyTooLarge as soon as the declared length or the bytes
    received so far exceed it (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; InvalidRequest for anything else, nesting too deep for the parser included."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidRequest("the body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    return payload
