"""Finance's reads of the projection tables: order listing with keyset pagination, daily report, CSV."""

from __future__ import annotations

import base64
import contextlib
import re
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require
from api.csvstream import csv_chunks, csv_download
from api.orders import positive_int
from api.views import LedgerJSON
from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import APP_ID_MAX, EARLIEST_YEAR, ID_MAX, LATEST_YEAR, has_control
from projections.common import CST
from projections.queries import DAILY_COLUMNS, ORDER_COLUMNS, daily_report, iter_orders, list_orders, report_totals

STATUSES = ("PENDING", "PAID", "FINISHED", "CLOSED")
MAX_LIMIT, MAX_DAYS = 1000, 366
_ORDER_PARAMS = {"status", "paid_from", "paid_to", "app_id", "auth_app_id", "limit", "cursor", "format"}
_DAILY_PARAMS = {"from", "to", "app_id", "auth_app_id", "format"}


async def orders(request: Request) -> Response:
    require(request, "finance", "operator")
    params = _params(request, _ORDER_PARAMS)
    filters: dict[str, Any] = {"statuses": _statuses(params.get("status")), "app_id": _app_id(params),
                               "auth_app_id": _auth_app_id(request, params),
                               "paid_from": _moment(params, "paid_from"), "paid_to": _moment(params, "paid_to")}
    if filters["paid_from"] and filters["paid_to"] and filters["paid_to"] <= filters["paid_from"]:
        raise InvalidRequest("paid_to must be later than paid_from (paid_from is inclusive, paid_to exclusive)")
    after_id, csv = _after_id(params.get("cursor")), _is_csv(params)
    limit = positive_int(params.get("limit", "100"), "limit", most=MAX_LIMIT)
    engine = _engine(request)
    if csv:  # every matching row after the cursor, whatever the limit
        return csv_download(csv_chunks(ORDER_COLUMNS, iter_orders(engine, **filters, after_id=after_id)),
                            "orders.csv")
    rows = await run_in_threadpool(list_orders, engine, **filters, after_id=after_id, limit=limit)
    return LedgerJSON({"orders": rows, "next_cursor": cursor_after(rows[-1]["id"]) if len(rows) == limit else None})


async def daily(request: Request) -> Response:
    require(request, "finance", "operator")
    params = _params(request, _DAILY_PARAMS)
    day_from, day_to, app_id, csv = _day(params, "from"), _day(params, "to"), _app_id(params), _is_csv(params)
    if day_from > day_to:
        raise InvalidRequest("from must not be after to")
    if (day_to - day_from).days >= MAX_DAYS:
        raise InvalidRequest(f"the report covers at most {MAX_DAYS} days")
    days = await run_in_threadpool(lambda: daily_report(_engine(request), day_from=day_from, day_to=day_to,
                                                        app_id=app_id, auth_app_id=_auth_app_id(request, params)))
    totals = report_totals(days)
    if csv:
        rows = [*days, {"day": "TOTAL", "app_id": app_id, **totals}]
        return csv_download(csv_chunks(DAILY_COLUMNS, rows), f"daily-{day_from}-{day_to}.csv")
    return LedgerJSON({"from": day_from.isoformat(), "to": day_to.isoformat(),
                       "days": [{**day, "day": day["day"].isoformat()} for day in days], "totals": totals})


def cursor_after(last_id: int, kind: str = "order") -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def _after_id(text: str | None, kind: str = "order") -> int | None:
    if text is None:
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True).decode("ascii")
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        raw = ""
    given, _, number = raw.partition(":")
    if given != kind or not re.fullmatch(r"[0-9]{1,18}", number):
        raise InvalidRequest("cursor is not one this API gave out: pass next_cursor back unchanged")
    return int(number)


def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    names = [name for name, _ in request.query_params.multi_items()]
    if unknown := sorted(set(names) - allowed):
        raise InvalidRequest(f"unknown parameter {', '.join(unknown)}: this takes {', '.join(sorted(allowed))}")
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise InvalidRequest(f"give {', '.join(repeated)} once (status takes a comma-separated list)")
    return dict(request.query_params)


def _statuses(text: str | None) -> list[str]:
    statuses = [] if text is None else text.split(",")
    if any(status not in STATUSES for status in statuses):
        raise InvalidRequest(f"status must be a comma-separated list of {', '.join(STATUSES)}")
    return statuses


def _moment(params: dict[str, str], name: str) -> datetime | None:
    if name not in params:
        return None
    try:
        moment = datetime.fromisoformat(params[name])  # a date alone is its midnight
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or time such as 2026-11-21 or 2026-11-21T10:00:00"
                             "+08:00 (China Standard Time when it has no offset; send + as %2B)") from None
    # Checked in its own zone, then moved to UTC: within these years that move (a day at most) cannot overflow.
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise InvalidRequest(f"{name} must lie in the years {EARLIEST_YEAR} to {LATEST_YEAR}, when Alipay pays, "
                             f"not {params[name]!r}"[:200])
    return (moment if moment.tzinfo else moment.replace(tzinfo=CST)).astimezone(UTC)


def _day(params: dict[str, str], name: str) -> date:
    with contextlib.suppress(ValueError):
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", params.get(name, "")):
            return date.fromisoformat(params[name])
    raise InvalidRequest(f"{name} is required, a China Standard Time day as YYYY-MM-DD")


def _app_id(params: dict[str, str]) -> str | None:
    if "app_id" in params and not (0 < len(params["app_id"]) <= APP_ID_MAX and not has_control(params["app_id"])):
        raise InvalidRequest(f"app_id must be 1 to {APP_ID_MAX} characters, none of them a control character")
    return params.get("app_id")


def _auth_app_id(request: Request, params: dict[str, str]) -> str | None:
    """A service provider's merchant; `auth_app_id=` (empty, or a configured app's own id, as Alipay sends it
    for an app's own trades) selects the apps' own orders."""
    if "auth_app_id" not in params:
        return None
    given = params["auth_app_id"]
    if len(given) > ID_MAX or has_control(given):
        raise InvalidRequest(f"auth_app_id must be at most {ID_MAX} characters, none of them a control character")
    return "" if given in request.app.state.ledger.settings.apps else given


def _is_csv(params: dict[str, str]) -> bool:
    if params.get("format", "json") not in ("json", "csv"):
        raise InvalidRequest("format must be json or csv")
    return params.get("format") == "csv"


def _engine(request: Request) -> sa.Engine:
    engine: sa.Engine | None = request.app.state.ledger.engine
    if engine is None:
        raise HTTPException(501, "this ledger keeps no read model (it runs on the in-memory store)")
    return engine


routes: list[Route] = [
    Route("/api/orders", orders, methods=["GET"]),
    Route("/api/reports/daily", daily, methods=["GET"]),
]
