"""`POST /api/alipay/notify`: Alipay's asynchronous notification, answered `success` only once recorded."""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from ledger.alipay.form import MAX_BODY_BYTES
from ledger.domain.errors import Rejected, RetryLater
from ledger.service import RecordCallback

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
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


async def notify(request: Request) -> PlainTextResponse:
    try:
        body = await read_limited(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        request.app.state.ledger.service.metrics.notifications.labels("too_large").inc()
        return PlainTextResponse("fail", status_code=413)
    remote = request.client.host if request.client else ""
    service = request.app.state.ledger.service
    counted = service.metrics.notifications
    try:
        await anyio.to_thread.run_sync(service.record_callback, RecordCallback(body=body, remote_addr=remote),
                                       limiter=request.app.state.intake_limiter)
    except Rejected as exc:
        counted.labels(exc.reason).inc()
        return PlainTextResponse("fail", status_code=400)
    except RetryLater as exc:
        counted.labels(exc.reason).inc()
        log.warning("notification not recorded, Alipay will retry: %s", exc)
        return PlainTextResponse("fail", status_code=503, headers={"Retry-After": "60"})
    except Exception:
        counted.labels("error").inc()
        # Never a 500 page: Alipay only reads the body, and must come back once this is fixed.
        log.exception("notification not recorded: unexpected error")
        return PlainTextResponse("fail", status_code=503)
    counted.labels("success").inc()
    return PlainTextResponse("success")
