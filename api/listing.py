"""What the API's list endpoints share: their query's parameters read strictly (an unknown or repeated one is
refused: a mistyped filter must not give finance wrong numbers), times and app ids checked, keyset cursors, JSON
or CSV, and the read model's engine."""

from __future__ import annotations

import base64
import contextlib
import re
from datetime import UTC, date, datetime

import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import APP_ID_MAX, EARLIEST_YEAR, LATEST_YEAR, has_control
from projections.common import CST

MAX_LIMIT = 1000  # rows in one page
MAX_DAYS = 366  # days in one report


def cursor_after(last_id: int, kind: str = "order") -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None, kind: str = "order") -> int | None:
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


def params_of(request: Request, allowed: set[str]) -> dict[str, str]:
    names = [name for name, _ in request.query_params.multi_items()]
    if unknown := sorted(set(names) - allowed):
        raise InvalidRequest(f"unknown parameter {', '.join(unknown)}: this takes {', '.join(sorted(allowed))}")
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise InvalidRequest(f"give {', '.join(repeated)} once (status takes a comma-separated list)")
    return dict(request.query_params)


def moment(params: dict[str, str], name: str) -> datetime | None:
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


def day_param(text: str, name: str) -> date:
    """A China Standard Time day written as YYYY-MM-DD, strictly (no week dates, no basic format)."""
    with contextlib.suppress(ValueError):
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text)
    raise InvalidRequest(f"{name} is required, a China Standard Time day as YYYY-MM-DD")


def day_range(params: dict[str, str]) -> tuple[date, date]:
    """`from` and `to`, both required and inclusive, in order, at most MAX_DAYS apart."""
    day_from, day_to = day_param(params.get("from", ""), "from"), day_param(params.get("to", ""), "to")
    if day_from > day_to:
        raise InvalidRequest("from must not be after to")
    if (day_to - day_from).days >= MAX_DAYS:
        raise InvalidRequest(f"the report covers at most {MAX_DAYS} days")
    return day_from, day_to


def app_id_param(params: dict[str, str]) -> str | None:
    if "app_id" in params and not (0 < len(params["app_id"]) <= APP_ID_MAX and not has_control(params["app_id"])):
        raise InvalidRequest(f"app_id must be 1 to {APP_ID_MAX} characters, none of them a control character")
    return params.get("app_id")


def is_csv(params: dict[str, str]) -> bool:
    if params.get("format", "json") not in ("json", "csv"):
        raise InvalidRequest("format must be json or csv")
    return params.get("format") == "csv"


def engine_of(request: Request) -> sa.Engine:
    engine: sa.Engine | None = request.app.state.ledger.engine
    if engine is None:
        raise HTTPException(501, "this ledger keeps no read model (it runs on the in-memory store)")
    return engine
