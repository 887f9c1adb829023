"""Unsigned notification parameters for domain tests (signed ones come from ledger.alipay.sandbox)."""

from __future__ import annotations

import uuid


def notification(out_trade_no: str, *, app_id: str = "2021000000000001", **fields: str) -> dict[str, str]:
    params = {
        "app_id": app_id, "charset": "utf-8", "notify_id": uuid.uuid4().hex,
        "notify_time": "2026-11-21 10:00:00", "notify_type": "trade_status_sync", "version": "1.0",
        "out_trade_no": out_trade_no, "trade_no": f"2026{out_trade_no}", "trade_status": "TRADE_SUCCESS",
        "total_amount": "88.00", "receipt_amount": "88.00", "buyer_pay_amount": "88.00",
        "gmt_payment": "2026-11-21 09:59:59", "buyer_id": "2088000000000002", "seller_id": "2088000000000001",
    }
    params.update(fields)
    return params
