"""Reconciliation's results, for finance and operators: the days matched (`GET /api/reconciliation`), a day's
findings with both sides' values (`GET /api/reconciliation/{date}`), a day matched again, a finding resolved."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require
from api.bodies import BodyTooLarge, json_object, read_limited
from api.csvstream import csv_chunks, csv_download
from api.errors import ApiError
from api.listing import app_id_param, day_param, day_range, engine_of, is_csv, params_of
from api.views import LedgerJSON
from ledger.bootstrap import Ledger
from ledger.domain.bill import Bill
from ledger.domain.errors import InvalidRequest, StorageUnavailable
from ledger.domain.limits import check_note
from ledger.domain.matching import KINDS
from ledger.service.reconciliation import BillMissing, ReconcileService
from projections.queries.reconciliation import DAY_COLUMNS, FINDING_COLUMNS, STATES, day_findings, days_report

ROLES = ("finance", "operator")
MAX_NOTE_BYTES = 16 * 1024
_DAYS_PARAMS = {"from", "to", "app_id", "format"}
_DAY_PARAMS = {"app_id", "kind", "state", "format"}


async def days(request: Request) -> Response:
    require(request, *ROLES)
    params = params_of(request, _DAYS_PARAMS)
    (day_from, day_to), app_id, csv = day_range(params), app_id_param(params), is_csv(params)
    engine = engine_of(request)
    rows = await run_in_threadpool(lambda: days_report(engine, day_from=day_from, day_to=day_to, app_id=app_id))
    if csv:
        return csv_download(csv_chunks(DAY_COLUMNS, rows), f"reconciliation-{day_from}-{day_to}.csv")
    return LedgerJSON({"from": day_from.isoformat(), "to": day_to.isoformat(), "days": rows})


async def day(request: Request) -> Response:
    require(request, *ROLES)
    params = params_of(request, _DAY_PARAMS)
    the_day, app_id, csv = _path_day(request), app_id_param(params), is_csv(params)
    kind, state = params.get("kind"), params.get("state")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
    if state is not None and state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
    engine = engine_of(request)
    findings = await run_in_threadpool(lambda: day_findings(engine, the_day, app_id=app_id, kind=kind, state=state))
    if csv:
        return csv_download(csv_chunks(FINDING_COLUMNS, findings), f"reconciliation-{the_day}.csv")
    summary = await run_in_threadpool(lambda: days_report(engine, day_from=the_day, day_to=the_day, app_id=app_id))
    return LedgerJSON({"day": the_day.isoformat(), "days": summary, "findings": findings})


async def match(request: Request) -> LedgerJSON:
    who = require(request, *ROLES).who
    params = params_of(request, {"app_id"})
    the_day, app_id = _path_day(request), app_id_param(params)
    reconcile = _reconcile(request)
    try:
        run = await run_in_threadpool(lambda: reconcile.match_day(the_day, who=f"{who} via API", app_id=app_id))
    except BillMissing as exc:
        raise ApiError(404, "no_bill", str(exc), hint="import the day's bill (POST /api/reconciliation/bills) or "
                                                      "fetch it (`ledger reconcile fetch`) first") from None
    return LedgerJSON(asdict(run))


async def resolve(request: Request) -> LedgerJSON:
    who = require(request, *ROLES).who
    try:
        finding_id = UUID(request.path_params["finding_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such finding") from None
    try:
        body = await read_limited(request, MAX_NOTE_BYTES)
    except BodyTooLarge:
        raise HTTPException(413, f"a resolution is at most {MAX_NOTE_BYTES} bytes") from None
    note = json_object(body).get("note") if body else None
    if not isinstance(note, str):
        raise InvalidRequest('give {"note": "..."}: why the finding is settled')
    check_note(note)
    reconcile = _reconcile(request)
    by = f"{who} via API"
    try:
        finding = await run_in_threadpool(lambda: reconcile.resolve(finding_id, who=by, note=note))
    except LookupError:
        raise ApiError(404, "not_found", "no such finding") from None
    return LedgerJSON({"finding_id": str(finding.id), "app_id": finding.app_id, "day": finding.day,
                       "kind": finding.kind, "key": finding.key, "out_trade_no": finding.out_trade_no,
                       "request_no": finding.request_no, "state": finding.state, "who": by, "note": note,
                       "version": finding.version})


def match_after_import(ledger: Ledger, bill: Bill, who: str) -> dict[str, Any]:
    """The run of a bill's day just imported; the import stands whatever becomes of it, so a failure is told, not
    raised (match again with `POST /api/reconciliation/{date}/match`)."""
    if ledger.reconcile is None:
        return {"error": "this ledger keeps no read model (it runs on the in-memory store): nothing is matched"}
    try:
        return asdict(ledger.reconcile.match_bill(bill, who=who))
    except StorageUnavailable as exc:
        return {"error": f"imported, not matched: {exc}; match the day again later"}


def _path_day(request: Request) -> date:
    text = request.path_params["date"]
    try:
        return day_param(text, "the day")
    except InvalidRequest:
        raise ApiError(404, "not_found", f"{text[:40]!r} is not a day: /api/reconciliation/{{date}} takes a China "
                                         "Standard Time day as YYYY-MM-DD") from None


def _reconcile(request: Request) -> ReconcileService:
    reconcile: ReconcileService | None = request.app.state.ledger.reconcile
    if reconcile is None:
        raise HTTPException(501, "this ledger keeps no read model (it runs on the in-memory store)")
    return reconcile


routes = [
    Route("/api/reconciliation", days, methods=["GET"]),
    # After the bills' routes (api/reconciliation.py): /api/reconciliation/bills is theirs, not a day's.
    Route("/api/reconciliation/{date}", day, methods=["GET"]),
    Route("/api/reconciliation/{date}/match", match, methods=["POST"]),
    Route("/api/reconciliation/findings/{finding_id}/resolve", resolve, methods=["POST"]),
]
