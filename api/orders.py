"""Order endpoints: registration by the merchant, the order's state, and its history, page by page, for auditors."""

from __future__ import annotations

from typing import NoReturn

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.auth import require
from api.bodies import BodyTooLarge, json_object, read_limited
from api.errors import ApiError
from api.views import LedgerJSON, event_view, order_view
from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import ID_MAX, check_registration, check_text
from ledger.domain.notice import merchant_of
from ledger.domain.order import Order
from ledger.service.application import RegisterOrder
from projections.queries import order_row, reached

READ_YOUR_WRITE_SECONDS = 5.0
# Out_trade_no, amount and subject of Alipay's sizes fit in well under 1 KiB; 16 leaves room and no more.
MAX_REGISTRATION_BYTES = 16 * 1024
# An order's version, as a database's int holds it: far beyond any stream, and below what SQLite can bind.
MAX_VERSION = 2**31 - 1
HISTORY_PAGE, MAX_HISTORY_PAGE = 100, 1000


def app_id_of(request: Request, given: object) -> str:
    apps = request.app.state.ledger.settings.apps
    if given is None and len(apps) == 1:
        return str(next(iter(apps)))
    if not isinstance(given, str) or given not in apps:
        raise InvalidRequest(f"app_id must be one of the configured apps: {', '.join(sorted(apps))}")
    return given


def order_number(request: Request) -> str:
    """The out_trade_no of the path, within Alipay's limits (no order beyond them exists; a NUL would be refused
    by PostgreSQL as an error, not a 404)."""
    return check_text(request.path_params["out_trade_no"], field="out_trade_no", most=ID_MAX, required=True)


def merchant_of_request(app_id: str, given: object) -> str:
    """A service provider's merchant (`auth_app_id`, ISV mode) named by the caller; "" for the app's own orders."""
    if given is None:
        return ""
    if not isinstance(given, str):
        raise InvalidRequest("auth_app_id must be a string")
    return merchant_of(app_id, check_text(given, field="auth_app_id", most=ID_MAX))


async def register(request: Request) -> LedgerJSON:
    require(request, "merchant")
    try:
        body = await read_limited(request, MAX_REGISTRATION_BYTES)
    except BodyTooLarge:
        raise HTTPException(413, f"a registration is at most {MAX_REGISTRATION_BYTES} bytes") from None
    payload = json_object(body)
    out_trade_no, amount, subject = payload.get("out_trade_no"), payload.get("total_amount"), payload.get("subject", "")
    if not isinstance(out_trade_no, str):
        raise InvalidRequest("out_trade_no must be a string of 1 to 64 characters")
    if not isinstance(amount, str):
        raise InvalidRequest('total_amount must be a string such as "88.00" (never a float)')
    if not isinstance(subject, str):
        raise InvalidRequest("subject must be a string")
    total_amount = check_registration(out_trade_no, amount, subject)
    app_id = app_id_of(request, payload.get("app_id"))
    cmd = RegisterOrder(app_id, out_trade_no, total_amount, subject,
                        merchant=merchant_of_request(app_id, payload.get("auth_app_id")))
    registered = await run_in_threadpool(request.app.state.ledger.service.register_order, cmd)
    return LedgerJSON({**order_view(registered.order), "position": registered.position},
                      status_code=201 if registered.newly else 200)


async def show(request: Request) -> LedgerJSON:
    """The order's row in the order_status projection; `?min_position=N` waits (briefly) until the
    projection has applied the log up to N, so a client reads its own write."""
    require(request, "merchant", "finance", "auditor", "operator")
    ledger = request.app.state.ledger
    app_id = app_id_of(request, request.query_params.get("app_id"))
    merchant = merchant_of_request(app_id, request.query_params.get("auth_app_id"))
    wanted = request.query_params.get("min_position")
    position = positive_int(wanted, "min_position") if wanted is not None else 0
    if position and not await reached(ledger.engine, position, timeout=READ_YOUR_WRITE_SECONDS):
        raise ApiError(503, "read_model_behind", f"the read model has not reached position {wanted} yet; ask again",
                       headers={"Retry-After": "1"})
    out_trade_no = order_number(request)
    row = await run_in_threadpool(order_row, ledger.engine, app_id, out_trade_no, merchant)
    if row is None:
        await _not_in_read_model(request, app_id, out_trade_no, merchant)
    return LedgerJSON(row)


async def _not_in_read_model(request: Request, app_id: str, out_trade_no: str, merchant: str) -> NoReturn:
    """404: either no such order, or one the log has and the read model has not applied yet (a read right
    after the write): that one says how to wait for it."""
    recorded = await run_in_threadpool(lambda: request.app.state.ledger.service.history(
        app_id, out_trade_no, limit=1, merchant=merchant))
    if recorded:
        raise ApiError(404, "not_yet_projected", "the order is recorded, but the read model has not applied it yet",
                       hint="ask again with ?min_position=N, N the position the write answered (a registration's "
                            "\"position\"): the read then waits until the read model has it")
    raise HTTPException(404, "no such order in the read model")


async def history(request: Request) -> LedgerJSON:
    """The order's events by version, a page at a time: `?after_version=N` (0 by default) and `?limit=M` (100
    by default, at most 1000); `next_after_version` continues, null on the last page. `?as_of_version=V` adds
    the order as it was at version V."""
    require(request, "auditor", "operator")
    params, service = request.query_params, request.app.state.ledger.service
    app_id, out_trade_no = app_id_of(request, params.get("app_id")), order_number(request)
    merchant = merchant_of_request(app_id, params.get("auth_app_id"))
    after = positive_int(params.get("after_version", "0"), "after_version", least=0, most=MAX_VERSION)
    limit = positive_int(params.get("limit", str(HISTORY_PAGE)), "limit", most=MAX_HISTORY_PAGE)
    as_of = params.get("as_of_version")
    as_of_version = None if as_of is None else positive_int(as_of, "as_of_version", most=MAX_VERSION)
    # One event more than the page says whether another page follows, without counting the stream.
    events = await run_in_threadpool(lambda: service.history(app_id, out_trade_no, after_version=after,
                                                             limit=limit + 1, merchant=merchant))
    # Past its last page an order answers an empty page; an order without events does not exist.
    if not events and (not after or not await run_in_threadpool(
            lambda: service.history(app_id, out_trade_no, limit=1, merchant=merchant))):
        raise HTTPException(404, "no such order")
    page = events[:limit]
    body = {"out_trade_no": out_trade_no, "app_id": app_id, "auth_app_id": merchant,
            "events": [event_view(e) for e in page],
            "next_after_version": page[-1].originator_version if len(events) > limit else None}
    if as_of_version is not None:
        body["as_of"] = order_view(await _as_of(request, app_id, out_trade_no, as_of_version, merchant))
    return LedgerJSON(body)


async def _as_of(request: Request, app_id: str, out_trade_no: str, version: int, merchant: str) -> Order:
    order: Order | None = await run_in_threadpool(lambda: request.app.state.ledger.service.get_order(
        app_id, out_trade_no, version, merchant=merchant))
    if order is None:
        raise HTTPException(404, "no such order")
    if order.version != version:
        raise HTTPException(404, f"the order has no version {version} (its latest is {order.version})")
    return order


def positive_int(text: str, name: str, *, least: int = 1, most: int | None = None) -> int:
    # isdigit alone takes "²", which int() refuses: ASCII digits only. At most 18 significant digits before
    # int(), which spends time on a long one and refuses one of over 4,300 digits (a 500).
    if (not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 18 or int(text) < least
            or (most is not None and int(text) > most)):
        limit = f" up to {most}" if most else ""
        raise InvalidRequest(f"{name} must be a whole number from {least}{limit}")
    return int(text)
