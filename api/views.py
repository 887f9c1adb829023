"""Plain-JSON views of orders and events; money as strings with two decimals, times as ISO 8601."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from starlette.responses import JSONResponse

from ledger.domain.order import Order


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class LedgerJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_plain, ensure_ascii=False).encode()


def order_view(order: Order) -> dict[str, Any]:
    payment = order.payment or {}
    return {
        "order_id": order.id, "app_id": order.app_id, "auth_app_id": order.merchant,
        "out_trade_no": order.out_trade_no,
        "status": order.status.value, "registered": order.registered,
        "registered_amount": order.registered_amount, "subject": order.subject,
        "trade_no": payment.get("trade_no"), "paid_amount": payment.get("total_amount"),
        "receipt_amount": payment.get("receipt_amount"), "gmt_payment": payment.get("gmt_payment"),
        "buyer_id": payment.get("buyer_id"), "seller_id": payment.get("seller_id"),
        "refunded_amount": order.refunded, "refunds": order.refunds, "close_reason": order.close_reason or None,
        "amount_mismatch": bool(order.mismatched_amounts),
        "callbacks": sum(order.deliveries.values()), "version": order.version,
    }


def event_view(event: Any) -> dict[str, Any]:
    data = {k: v for k, v in vars(event).items()
            if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")}
    return {"version": event.originator_version, "type": type(event).__name__,
            "recorded_at": event.timestamp, "data": data}
