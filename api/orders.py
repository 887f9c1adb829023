"""Order endpoints: registration by the merchant, the order's state, and its full history for auditors."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.auth import require
from api.bodies import BodyTooLarge, json_object, read_limited
from api.views import LedgerJSON, event_view, order_view
from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import check_registration
from ledger.service import RegisterOrder
from projections.queries import order_row, reached

READ_YOUR_WRITE_SECONDS = 5.0
# Out_trade_no, amount and subject of Alipay's sizes fit in well under 1 KiB; 16 leaves room and no more.
MAX_REGISTRATION_BYTES = 16 * 1024


def app_id_of(request: Request, given: object) -> str:
    apps = request.app.state.ledger.settings.apps
    if given is None and len(apps) == 1:
        return str(next(iter(apps)))
    if not isinstance(given, str) or given not in apps:
        raise InvalidRequest(f"app_id must be one of the configured apps: {', '.join(sorted(apps))}")
    return given


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
    cmd = RegisterOrder(app_id_of(request, payload.get("app_id")), out_trade_no, total_amount, subject)
    registered = await run_in_threadpool(request.app.state.ledger.service.register_order, cmd)
    return LedgerJSON({**order_view(registered.order), "position": registered.position},
                      status_code=201 if registered.newly else 200)


async def show(request: Request) -> LedgerJSON:
    """The order's row in the order_status projection; `?min_position=N` waits (briefly) until the
    projection has applied the log up to N, so a client reads its own write."""
    require(request, "merchant", "finance", "auditor", "operator")
    ledger = request.app.state.ledger
    app_id = app_id_of(request, request.query_params.get("app_id"))
    wanted = request.query_params.get("min_position")
    position = positive_int(wanted, "min_position") if wanted is not None else 0
    if position and not await run_in_threadpool(
            lambda: reached(ledger.engine, position, timeout=READ_YOUR_WRITE_SECONDS)):
        raise HTTPException(503, f"the read model has not reached position {wanted} yet; ask again",
                            headers={"Retry-After": "1"})
    row = await run_in_threadpool(order_row, ledger.engine, app_id, request.path_params["out_trade_no"])
    if row is None:
        raise HTTPException(404, "no such order in the read model")
    return LedgerJSON(row)


async def history(request: Request) -> LedgerJSON:
    require(request, "auditor", "operator")
    app_id = app_id_of(request, request.query_params.get("app_id"))
    events = await run_in_threadpool(request.app.state.ledger.service.history, app_id,
                                     request.path_params["out_trade_no"])
    if not events:
        raise HTTPException(404, "no such order")
    body = {"out_trade_no": request.path_params["out_trade_no"], "app_id": app_id,
            "events": [event_view(e) for e in events]}
    if "as_of_version" in request.query_params:
        body["as_of"] = order_view(await _as_of(request, app_id))
    return LedgerJSON(body)


async def _as_of(request: Request, app_id: str):  # type: ignore[no-untyped-def]
    version_text = request.query_params.get("as_of_version")
    version = positive_int(version_text, "as_of_version") if version_text is not None else None
    order = await run_in_threadpool(request.app.state.ledger.service.get_order, app_id,
                                    request.path_params["out_trade_no"], version)
    if order is None:
        raise HTTPException(404, "no such order")
    if version is not None and order.version != version:
        raise HTTPException(404, f"the order has no version {version} (its latest is {order.version})")
    return order


def positive_int(text: str, name: str, *, most: int | None = None) -> int:
    # isdigit alone takes "²", which int() refuses: ASCII digits only.
    if not (text.isascii() and text.isdigit()) or int(text) < 1 or (most is not None and int(text) > most):
        limit = f" up to {most}" if most else ""
        raise InvalidRequest(f"{name} must be a whole number from 1{limit}")
    return int(text)
