"""Finance's reads of the projection tables: order listing with keyset pagination, daily report, CSV."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require
from api.csvstream import csv_chunks, csv_download
from api.listing import (
    MAX_LIMIT,
    app_id_param,
    cursor_after,
    day_range,
    decode_cursor,
    engine_of,
    is_csv,
    moment,
    params_of,
)
from api.orders import positive_int
from api.views import LedgerJSON
from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import ID_MAX, has_control
from projections.queries import DAILY_COLUMNS, ORDER_COLUMNS, daily_report, iter_orders, list_orders, report_totals

STATUSES = ("PENDING", "PAID", "FINISHED", "CLOSED")
_ORDER_PARAMS = {"status", "paid_from", "paid_to", "app_id", "auth_app_id", "limit", "cursor", "format"}
_DAILY_PARAMS = {"from", "to", "app_id", "auth_app_id", "format"}


async def orders(request: Request) -> Response:
    require(request, "finance", "operator")
    params = params_of(request, _ORDER_PARAMS)
    filters: dict[str, Any] = {"statuses": _statuses(params.get("status")), "app_id": app_id_param(params),
                               "auth_app_id": _auth_app_id(request, params),
                               "paid_from": moment(params, "paid_from"), "paid_to": moment(params, "paid_to")}
    if filters["paid_from"] and filters["paid_to"] and filters["paid_to"] <= filters["paid_from"]:
        raise InvalidRequest("paid_to must be later than paid_from (paid_from is inclusive, paid_to exclusive)")
    after_id, csv = decode_cursor(params.get("cursor")), is_csv(params)
    limit = positive_int(params.get("limit", "100"), "limit", most=MAX_LIMIT)
    engine = engine_of(request)
    if csv:  # every matching row after the cursor, whatever the limit
        return csv_download(csv_chunks(ORDER_COLUMNS, iter_orders(engine, **filters, after_id=after_id)),
                            "orders.csv")
    rows = await run_in_threadpool(list_orders, engine, **filters, after_id=after_id, limit=limit)
    return LedgerJSON({"orders": rows, "next_cursor": cursor_after(rows[-1]["id"]) if len(rows) == limit else None})


async def daily(request: Request) -> Response:
    require(request, "finance", "operator")
    params = params_of(request, _DAILY_PARAMS)
    (day_from, day_to), app_id, csv = day_range(params), app_id_param(params), is_csv(params)
    days = await run_in_threadpool(lambda: daily_report(engine_of(request), day_from=day_from, day_to=day_to,
                                                        app_id=app_id, auth_app_id=_auth_app_id(request, params)))
    totals = report_totals(days)
    if csv:
        rows = [*days, {"day": "TOTAL", "app_id": app_id, **totals}]
        return csv_download(csv_chunks(DAILY_COLUMNS, rows), f"daily-{day_from}-{day_to}.csv")
    return LedgerJSON({"from": day_from.isoformat(), "to": day_to.isoformat(),
                       "days": [{**day, "day": day["day"].isoformat()} for day in days], "totals": totals})


def _statuses(text: str | None) -> list[str]:
    statuses = [] if text is None else text.split(",")
    if any(status not in STATUSES for status in statuses):
        raise InvalidRequest(f"status must be a comma-separated list of {', '.join(STATUSES)}")
    return statuses


def _auth_app_id(request: Request, params: dict[str, str]) -> str | None:
    """A service provider's merchant; `auth_app_id=` (empty, or a configured app's own id, as Alipay sends it
    for an app's own trades) selects the apps' own orders."""
    if "auth_app_id" not in params:
        return None
    given = params["auth_app_id"]
    if len(given) > ID_MAX or has_control(given):
        raise InvalidRequest(f"auth_app_id must be at most {ID_MAX} characters, none of them a control character")
    return "" if given in request.app.state.ledger.settings.apps else given


routes: list[Route] = [
    Route("/api/orders", orders, methods=["GET"]),
    Route("/api/reports/daily", daily, methods=["GET"]),
]
