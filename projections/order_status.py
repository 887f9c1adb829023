"""order_status: one row per order with its current status and amounts, updated by SQL expressions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from projections.common import ZERO, alipay_time
from projections.tables import order_status as t

# The status never goes backwards: PENDING < PAID < FINISHED < CLOSED, as the aggregate derives it.
_AT_MOST = {"PAID": ["PENDING"], "FINISHED": ["PENDING", "PAID"]}


def _raise_status(to: str) -> Any:
    if to == "CLOSED":
        return "CLOSED"
    return sa.case((t.c.status.in_(_AT_MOST[to]), to), else_=t.c.status)


class OrderStatusProjection:
    name = "order_status"
    tables = (t,)

    def apply(self, conn: sa.Connection, event: Any, position: int) -> None:
        if not type(event).__qualname__.startswith("Order."):
            return  # alerts and other streams are not orders
        kind = type(event).__name__
        common = {"last_version": event.originator_version, "updated_at": event.timestamp}
        if kind == "Opened":
            conn.execute(t.insert().values(
                id=position, app_id=event.app_id, out_trade_no=event.out_trade_no, order_id=str(event.originator_id),
                status="PENDING", registered=False, subject="", refunded_amount=ZERO, amount_mismatch=False,
                callback_count=0, **common))
            return
        changes = self._changes(kind, event)
        if changes is not None:
            conn.execute(t.update().where(t.c.order_id == str(event.originator_id)).values(**changes, **common))

    @staticmethod
    def _changes(kind: str, e: Any) -> dict[str, Any] | None:
        if kind == "OrderRegistered":
            return {"registered": True, "registered_amount": e.total_amount, "subject": e.subject}
        if kind == "CallbackReceived":
            changes = {"callback_count": t.c.callback_count + 1, "last_callback_at": e.received_at,
                       "first_callback_at": sa.func.coalesce(t.c.first_callback_at, e.received_at)}
            if e.params.get("total_amount"):
                changes["notified_amount"] = Decimal(e.params["total_amount"])
            return changes
        if kind == "AmountMismatch":
            return {"amount_mismatch": True}
        if kind == "PaymentConfirmed":
            return {"status": _raise_status("PAID"), "trade_no": e.trade_no, "paid_amount": e.total_amount,
                    "receipt_amount": e.receipt_amount, "buyer_id": e.buyer_id or None,
                    "seller_id": e.seller_id or None, "gmt_payment": alipay_time(e.gmt_payment)}
        if kind == "RefundRecorded":
            return {"refunded_amount": t.c.refunded_amount + e.amount}
        if kind == "TradeFinished":
            return {"status": _raise_status("FINISHED")}
        if kind == "TradeClosed":
            return {"status": _raise_status("CLOSED")}
        return {}  # an event kind this projection does not read: still moves last_version
