"""Alipay's trade bills as evidence: `POST /api/reconciliation/bills` (finance) imports one someone downloaded by
hand and matches its day; `GET /api/reconciliation/bills/{id}` (finance, auditor, operator) its record,
`?download=1` (finance, auditor) the exact bytes imported."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require
from api.bodies import BodyTooLarge, read_limited
from api.errors import ApiError
from api.findings import match_after_import
from api.views import LedgerJSON
from ledger.domain.bill import Bill
from ledger.service.bills import MAX_BILL_BYTES


def bill_view(bill_id: UUID, bill: Bill) -> dict[str, Any]:
    return {"bill_id": str(bill_id), "app_id": bill.app_id, "account": bill.account, "bill_date": bill.bill_date,
            "sha256": bill.sha256, "size": bill.size, "source": bill.source, "who": bill.who,
            "imported_at": bill.imported_at, "period_start": bill.period_start, "period_end": bill.period_end,
            "payments": bill.payments, "refunds": bill.refunds, "total_amount": bill.total_amount,
            "receipt_amount": bill.receipt_amount, "fee": bill.fee, "share": bill.share, "net": bill.net,
            "version": bill.version}


async def import_bill(request: Request) -> LedgerJSON:
    who = require(request, "finance").who
    try:
        data = await read_limited(request, MAX_BILL_BYTES)
    except BodyTooLarge:
        raise HTTPException(413, f"a bill is at most {MAX_BILL_BYTES // 2**20} MiB") from None
    if not data:
        raise ApiError(400, "bad_request", "send the bill's bytes as the body: the zip as Alipay gives it, or its "
                                           "业务明细 CSV")
    app_id = request.query_params.get("app_id")
    ledger = request.app.state.ledger
    done = await run_in_threadpool(lambda: ledger.bills.import_bill(data, source="api", who=f"{who} via API",
                                                                    app_id=app_id))
    # Imported again or not: the day is matched with what the ledger knows now.
    run = await run_in_threadpool(match_after_import, ledger, done.bill, f"{who} via API")
    return LedgerJSON({**bill_view(done.bill_id, done.bill), "newly": done.newly, "reconciliation": run},
                      status_code=201 if done.newly else 200)


async def show_bill(request: Request) -> Response:
    download = request.query_params.get("download") == "1"
    require(request, *(("finance", "auditor") if download else ("finance", "auditor", "operator")))
    try:
        bill_id = UUID(request.path_params["bill_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such bill") from None
    bills = request.app.state.ledger.bills
    bill = await run_in_threadpool(bills.bill, bill_id)
    if bill is None:
        raise ApiError(404, "not_found", "no such bill")
    if not download:
        return LedgerJSON(bill_view(bill_id, bill))
    data = await run_in_threadpool(bills.bytes_of, bill)
    zipped = data[:2] == b"PK"
    name = f"alipay-trade-bill-{bill.app_id}-{bill.bill_date}.{'zip' if zipped else 'csv'}"
    return Response(data, media_type="application/zip" if zipped else "text/csv; charset=gbk",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-SHA256": bill.sha256})


routes = [
    Route("/api/reconciliation/bills", import_bill, methods=["POST"]),
    Route("/api/reconciliation/bills/{bill_id}", show_bill, methods=["GET"]),
]
