"""`POST /api/alipay/notify`: Alipay's asynchronous notifications and the messages of its message service,
answered `success` only once recorded."""

from __future__ import annotations

import ipaddress
import logging

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from api.bodies import BodyTooLarge, read_limited
from api.floods import floods_count
from ledger.alipay.form import MAX_BODY_BYTES
from ledger.domain.errors import Rejected, RetryLater, UnknownOrder
from ledger.service.application import RecordCallback

log = logging.getLogger(__name__)
INVALID_ADDRESS = "invalid"  # stored for a peer that has no IP address, or claims a malformed one


async def notify(request: Request) -> PlainTextResponse:
    service = request.app.state.ledger.service
    counted = service.metrics.notifications
    try:
        body = await read_limited(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        counted.labels("too_large").inc()
        return PlainTextResponse("fail", status_code=413)
    cmd = RecordCallback(body=body, remote_addr=remote_address(request))
    try:
        # Verifying is CPU only (about 0.1 ms): done here, it saves a thread hop per callback. This returns
        # once the batch holding the callback is committed (a message of the message service: once its own
        # commit, made on a thread, is done).
        await service.record(service.verify(cmd))
    except (Rejected, UnknownOrder) as exc:
        if floods_count(exc) and not request.app.state.refusal_floods.admit(cmd.remote_addr):
            # Over its source's rate: no rejected-log row, no log line of its own (they are summed up).
            counted.labels("throttled").inc()
            return PlainTextResponse("fail", status_code=429)
        try:
            await anyio.to_thread.run_sync(service.refuse, cmd, exc, limiter=request.app.state.refusal_limiter)
        except RetryLater as unkept:  # a verified notification that could not be kept in quarantine
            counted.labels(unkept.reason).inc()
            log.warning("notification not kept, Alipay will retry: %s", unkept)
            return PlainTextResponse("fail", status_code=503, headers={"Retry-After": "60"})
        counted.labels(exc.reason).inc()
        if isinstance(exc, Rejected):
            return PlainTextResponse("fail", status_code=400)
        return PlainTextResponse("fail", status_code=503, headers={"Retry-After": "60"})
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


def remote_address(request: Request) -> str:
    """The sender's IP address (from a trusted proxy's X-Forwarded-For if LEDGER_TRUSTED_PROXIES lists the
    peer), normalised, or INVALID_ADDRESS: what is stored and logged is never text a client chose."""
    try:
        # A zone (fe80::1%eth0) names our own interface, not the sender.
        address = ipaddress.ip_address((request.client.host if request.client else "").partition("%")[0])
    except ValueError:
        return INVALID_ADDRESS
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)  # a dual-stack socket's ::ffff:192.0.2.7 is 192.0.2.7
