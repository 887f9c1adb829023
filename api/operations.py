"""Operators' endpoints: the manual queue of abandoned deliveries, alert counts, Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require
from api.bodies import BodyTooLarge, json_object, read_limited
from api.orders import app_id_of, merchant_of_request, order_number
from api.views import LedgerJSON
from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import check_note
from projections.queries import operations as queries

MAX_ACTION_BYTES = 16 * 1024  # a note and the order's keys


async def manual_queue(request: Request) -> LedgerJSON:
    require(request, "operator")
    rows = await run_in_threadpool(queries.manual_queue, request.app.state.ledger.engine)
    return LedgerJSON({"entries": rows})


async def _act(request: Request, action: str) -> LedgerJSON:
    who = require(request, "operator").who  # "operator alice": the token's role and name
    try:
        body = await read_limited(request, MAX_ACTION_BYTES)
    except BodyTooLarge:
        raise HTTPException(413, f"an operator's request is at most {MAX_ACTION_BYTES} bytes") from None
    payload = json_object(body) if body else {}
    note = payload.get("note", "")
    if not isinstance(note, str):
        raise InvalidRequest('give {"note": "..."}: why the order is retried or resolved')
    check_note(note)
    out_trade_no = order_number(request)
    app_id = app_id_of(request, payload.get("app_id"))
    merchant = merchant_of_request(app_id, payload.get("auth_app_id"))
    service = request.app.state.ledger.service
    method = service.manual_retry if action == "retry" else service.resolve
    changes = await run_in_threadpool(lambda: method(app_id, out_trade_no, who=f"{who} via API", note=note,
                                                     merchant=merchant))
    return LedgerJSON({"out_trade_no": out_trade_no, "action": action, "changes": changes})


async def retry(request: Request) -> LedgerJSON:
    return await _act(request, "retry")


async def resolve(request: Request) -> LedgerJSON:
    return await _act(request, "resolve")


async def alert_counts(request: Request) -> LedgerJSON:
    require(request, "operator")
    return LedgerJSON(await run_in_threadpool(queries.alert_counts, request.app.state.ledger.engine))


async def metrics(request: Request) -> Response:
    registry = request.app.state.ledger.metrics.registry
    return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/api/manual-queue", manual_queue, methods=["GET"]),
    # Any out_trade_no, "/" included; the greedy match reads A/retry/retry as a retry of the order "A/retry".
    Route("/api/manual-queue/{out_trade_no:path}/retry", retry, methods=["POST"]),
    Route("/api/manual-queue/{out_trade_no:path}/resolve", resolve, methods=["POST"]),
    Route("/api/alerts", alert_counts, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
