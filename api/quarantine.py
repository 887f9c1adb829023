"""Operators' view of notifications Alipay signed that could not be booked (ledger.adapters.refusals.quarantine)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.auth import require
from api.orders import positive_int
from api.views import LedgerJSON


async def quarantined(request: Request) -> LedgerJSON:
    require(request, "operator", "auditor")
    limit = positive_int(request.query_params.get("limit", "100"), "limit", most=1000)
    rows = await run_in_threadpool(request.app.state.ledger.service.quarantine.latest, limit)
    return LedgerJSON({"quarantined": rows})


routes = [Route("/api/quarantined-callbacks", quarantined, methods=["GET"])]
