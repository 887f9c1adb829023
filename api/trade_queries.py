"""`POST /api/orders/{out_trade_no}/query`: ask Alipay about the trade now (operator, merchant); the answer is
recorded in the order's history and applied as a notification would be."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from api.auth import require
from api.bodies import BodyTooLarge, json_object, read_limited
from api.orders import app_id_of, merchant_of_request, order_number
from api.views import LedgerJSON
from ledger.service.trade_query import answer_summary

MAX_QUERY_BYTES = 4 * 1024  # the order's keys


async def query(request: Request) -> LedgerJSON:
    who = require(request, "operator", "merchant").who
    try:
        body = await read_limited(request, MAX_QUERY_BYTES)
    except BodyTooLarge:
        raise HTTPException(413, f"a query request is at most {MAX_QUERY_BYTES} bytes") from None
    payload = json_object(body) if body else {}
    out_trade_no = order_number(request)
    app_id = app_id_of(request, payload.get("app_id"))
    merchant = merchant_of_request(app_id, payload.get("auth_app_id"))
    queries = request.app.state.ledger.queries
    result = await run_in_threadpool(lambda: queries.query_now(app_id, out_trade_no, who=f"{who} via API",
                                                              merchant=merchant))
    # Recorded either way; 502 when Alipay's gateway gave no answer to believe (`error` says why).
    return LedgerJSON(answer_summary(result), status_code=200 if result.answer else 502)


routes = [Route("/api/orders/{out_trade_no:path}/query", query, methods=["POST"])]
