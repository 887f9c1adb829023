"""order_status: one row per order with its current status and amounts, updated by SQL expressions.

Written in bulk: a batch is split into layers (at most one event per order), and each layer runs one
prepared statement per kind of change over all its rows (executemany), not one statement per event.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from projections.common import ZERO, Batch, alipay_time, layers
from projections.tables import order_status as t

# The status never goes backwards: PENDING < PAID < FINISHED < CLOSED, as the aggregate derives it.
_AT_MOST = {"PAID": ["PENDING"], "FINISHED": ["PENDING", "PAID"]}


def _raise_status(to: str) -> Any:
    if to == "CLOSED":
        return "CLOSED"
    # or_ rather than in_: an IN list is an expanding parameter, which executemany refuses.
    return sa.case((sa.or_(*(t.c.status == lower for lower in _AT_MOST[to])), to), else_=t.c.status)


def _p(column: str) -> Any:
    """A bound parameter typed like the column (its name must differ from the column's)."""
    return sa.bindparam(f"p_{column}", type_=t.c[column].type)


def _update(**values: Any) -> sa.Update:
    return (t.update().where(t.c.order_id == _p("order_id"))
            .values(last_version=_p("last_version"), updated_at=_p("updated_at"), **values))


# kind -> (statement, the event's parameters for it); kinds not listed only move last_version.
_CHANGES: dict[str, tuple[sa.Update, Callable[[Any], dict[str, Any]]]] = {
    "OrderRegistered": (
        _update(registered=True, registered_amount=_p("registered_amount"), subject=_p("subject")),
        lambda e: {"p_registered_amount": e.total_amount, "p_subject": e.subject}),
    "CallbackReceived": (
        _update(callback_count=t.c.callback_count + 1, last_callback_at=_p("last_callback_at"),
                first_callback_at=sa.func.coalesce(t.c.first_callback_at, _p("last_callback_at")),
                notified_amount=sa.func.coalesce(_p("notified_amount"), t.c.notified_amount)),
        lambda e: {"p_last_callback_at": e.received_at, "p_notified_amount": (
            Decimal(e.params["total_amount"]) if e.params.get("total_amount") else None)}),
    "AmountMismatch": (_update(amount_mismatch=True), lambda e: {}),
    "PaymentConfirmed": (
        _update(status=_raise_status("PAID"), trade_no=_p("trade_no"), paid_amount=_p("paid_amount"),
                receipt_amount=_p("receipt_amount"), buyer_id=_p("buyer_id"), seller_id=_p("seller_id"),
                gmt_payment=_p("gmt_payment")),
        lambda e: {"p_trade_no": e.trade_no, "p_paid_amount": e.total_amount, "p_receipt_amount": e.receipt_amount,
                   "p_buyer_id": e.buyer_id or None, "p_seller_id": e.seller_id or None,
                   "p_gmt_payment": alipay_time(e.gmt_payment)}),
    "RefundRecorded": (_update(refunded_amount=t.c.refunded_amount + _p("refunded_amount")),
                       lambda e: {"p_refunded_amount": e.amount}),
    "TradeFinished": (_update(status=_raise_status("FINISHED")), lambda e: {}),
    "TradeClosed": (_update(status=_raise_status("CLOSED")), lambda e: {}),
}
_ONLY_VERSION = (_update(), lambda e: {})


class OrderStatusProjection:
    name = "order_status"
    tables = (t,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        orders = [(position, e) for position, e in events if type(e).__qualname__.startswith("Order.")]
        for layer in layers(orders):  # alerts and other streams are not orders
            opened: list[dict[str, Any]] = []
            updates: dict[str, list[dict[str, Any]]] = {}
            for position, e in layer:
                kind = type(e).__name__
                if kind == "Opened":
                    opened.append({
                        "id": position, "app_id": e.app_id, "out_trade_no": e.out_trade_no,
                        "order_id": str(e.originator_id), "status": "PENDING", "registered": False, "subject": "",
                        "refunded_amount": ZERO, "amount_mismatch": False, "callback_count": 0,
                        "last_version": e.originator_version, "updated_at": e.timestamp})
                    continue
                _, params = _CHANGES.get(kind, _ONLY_VERSION)
                updates.setdefault(kind if kind in _CHANGES else "", []).append({
                    "p_order_id": str(e.originator_id), "p_last_version": e.originator_version,
                    "p_updated_at": e.timestamp, **params(e)})
            if opened:
                conn.execute(t.insert(), opened)
            for kind, rows in updates.items():
                conn.execute(_CHANGES.get(kind, _ONLY_VERSION)[0], rows)
