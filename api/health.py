"""Liveness, readiness and the operator's view of refused notifications."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.auth import require
from api.orders import positive_int
from api.views import LedgerJSON


async def healthz(request: Request) -> LedgerJSON:
    lock = request.app.state.ledger.lock.status()
    return LedgerJSON({"status": "degraded" if lock["degraded"] else "ok", "lock": lock})


async def readyz(request: Request) -> LedgerJSON:
    """Ready while the event store answers. Redis down only degrades (the version check still fences),
    so it is reported, but does not take the process out of a load balancer. The database's answer is kept
    for a couple of seconds (ledger.readiness, see ledger.bootstrap): the endpoint is open to anyone, and a
    flood of it must not load the database."""
    ledger = request.app.state.ledger
    check = ledger.readiness
    lock = await run_in_threadpool(ledger.lock.check)
    database = check.kept()
    if database is None:
        database = await run_in_threadpool(check.get)
    ready = database["ok"]
    body = {"status": "ready" if ready else "unavailable", "database": database, "lock": lock}
    return LedgerJSON(body, status_code=200 if ready else 503)


async def rejected(request: Request) -> LedgerJSON:
    require(request, "operator")
    limit = positive_int(request.query_params.get("limit", "100"), "limit", most=1000)
    rows = await run_in_threadpool(request.app.state.ledger.rejections.latest, limit)
    return LedgerJSON({"rejected": rows})


async def projections(request: Request) -> LedgerJSON:
    """Each projection's position, the log's head and the lag; whether the follower thread is stalled."""
    require(request, "operator")
    ledger = request.app.state.ledger
    head = await run_in_threadpool(ledger.store.ping)
    positions = await run_in_threadpool(ledger.runner.positions)
    follower = request.app.state.follower
    return LedgerJSON({
        "head": head,
        "projections": [{"name": name, "position": position, "lag": head - position}
                        for name, position in sorted(positions.items())],
        "follower": None if follower is None else follower.status(),
    })
