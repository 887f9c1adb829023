"""`GET /api/messages`: operators' list of the recorded messages of Alipay's message service (the `messages`
table), paged by keyset like the order listing, as JSON or CSV."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require
from api.csvstream import csv_chunks, csv_download
from api.listing import MAX_LIMIT, app_id_param, cursor_after, decode_cursor, engine_of, is_csv, moment, params_of
from api.orders import positive_int
from api.views import LedgerJSON
from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import check_text
from ledger.domain.message import MSG_METHOD_MAX
from projections.queries.messages import MESSAGE_COLUMNS, iter_messages, list_messages

_PARAMS = {"msg_method", "app_id", "from", "to", "limit", "cursor", "format"}
CURSOR_KIND = "message"


async def messages(request: Request) -> Response:
    require(request, "operator")
    params = params_of(request, _PARAMS)
    msg_method = params.get("msg_method")
    if msg_method is not None:
        check_text(msg_method, field="msg_method", most=MSG_METHOD_MAX, required=True)
    filters: dict[str, Any] = {"msg_method": msg_method, "app_id": app_id_param(params),
                               "received_from": moment(params, "from"), "received_to": moment(params, "to")}
    if filters["received_from"] and filters["received_to"] and filters["received_to"] <= filters["received_from"]:
        raise InvalidRequest("to must be later than from (from is inclusive, to exclusive)")
    after, csv = decode_cursor(params.get("cursor"), CURSOR_KIND), is_csv(params)
    limit = positive_int(params.get("limit", "100"), "limit", most=MAX_LIMIT)
    engine = engine_of(request)
    if csv:  # every matching row after the cursor, whatever the limit
        return csv_download(csv_chunks(MESSAGE_COLUMNS, iter_messages(engine, **filters, after_position=after)),
                            "messages.csv")
    rows = await run_in_threadpool(lambda: list_messages(engine, **filters, after_position=after, limit=limit))
    return LedgerJSON({"messages": rows,
                       "next_cursor": cursor_after(rows[-1]["position"], CURSOR_KIND) if len(rows) == limit else None})


routes = [Route("/api/messages", messages, methods=["GET"])]
