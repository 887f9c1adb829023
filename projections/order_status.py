"""order_status: one row per order with its current status and amounts.

A batch is folded in Python: the rows of the orders it touches are read in one query, each event
changes its order's row, and every touched row is written back in one bulk upsert. A new order's three
or four events become one row written once, not an insert and a string of updates. Safe because the
runner's compare-and-set on the position serialises runners before they read.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ledger.domain.trade_query import due_at
from projections.common import ZERO, Batch, alipay_time, insert_many, opened_merchant
from projections.tables import order_status as t

# The status never goes backwards: PENDING < PAID < FINISHED < CLOSED, as the aggregate derives it.
_RANK = {"PENDING": 0, "PAID": 1, "FINISHED": 2, "CLOSED": 3}


def _raise_status(row: dict[str, Any], to: str) -> None:
    if _RANK[to] > _RANK[row["status"]]:
        row["status"] = to


def _opened(position: int, e: Any) -> dict[str, Any]:
    return {"id": position, "app_id": e.app_id, "auth_app_id": opened_merchant(e), "out_trade_no": e.out_trade_no,
            "order_id": str(e.originator_id),
            "trade_no": None, "status": "PENDING", "registered": False, "registered_amount": None, "subject": "",
            "notified_amount": None, "paid_amount": None, "receipt_amount": None, "refunded_amount": ZERO,
            "amount_mismatch": False, "anomaly": False, "buyer_id": None, "seller_id": None, "gmt_payment": None,
            "first_callback_at": None, "last_callback_at": None, "callback_count": 0,
            "paid_via": None, "registered_at": None, "query_count": 0, "query_step": 0, "next_query_at": None,
            "query_taken_at": None,
            "last_query_at": None, "last_query_result": None, "queries_exhausted": False,
            "deposit_back_status": None, "deposited_back_amount": None, "deposit_back_at": None}


def _fold(row: dict[str, Any], kind: str, e: Any) -> None:
    """One event's change to its order's row; kinds not listed only move last_version."""
    if kind == "OrderRegistered":
        row.update(registered=True, registered_amount=e.total_amount, subject=e.subject)
    elif kind == "CallbackReceived":
        row.update(callback_count=row["callback_count"] + 1, last_callback_at=e.received_at,
                   first_callback_at=row["first_callback_at"] or e.received_at)
        if e.params.get("total_amount"):
            row["notified_amount"] = Decimal(e.params["total_amount"])
    elif kind == "AmountMismatch":
        row["amount_mismatch"] = True
    elif kind == "AnomalyFound":
        row["anomaly"] = True
    elif kind == "PaymentConfirmed":
        _raise_status(row, "PAID")
        row.update(trade_no=e.trade_no, paid_amount=e.total_amount, receipt_amount=e.receipt_amount,
                   buyer_id=e.buyer_id or None, seller_id=e.seller_id or None,
                   gmt_payment=alipay_time(e.gmt_payment), paid_via=getattr(e, "source", "notification"))
    elif kind == "RefundRecorded":
        row["refunded_amount"] = row["refunded_amount"] + e.amount
    elif kind == "TradeFinished":
        _raise_status(row, "FINISHED")
    elif kind == "TradeClosed":
        _raise_status(row, "CLOSED")
    elif kind == "RefundDepositedBack":  # the bank leg of a refund booked already: no amount moves here
        row.update(deposit_back_status=e.dback_status, deposit_back_at=alipay_time(e.bank_ack_time))
        if e.dback_amount is not None:
            row["deposited_back_amount"] = (row["deposited_back_amount"] or ZERO) + e.dback_amount


def _fold_queries(row: dict[str, Any], kind: str, e: Any, schedule: Sequence[float]) -> None:
    """The trade-query columns: when the schedule's next step is due (only while the order is pending), and
    what the last query found."""
    if kind == "OrderRegistered":
        row["registered_at"] = e.timestamp
    elif kind == "QueryStepTaken":
        row["query_taken_at"] = e.taken_at
    elif kind in ("TradeQueried", "TradeQueryFailed"):
        result = (e.trade_status or e.sub_code or e.code) if kind == "TradeQueried" else f"failed: {e.reason}"
        row.update(query_count=row["query_count"] + 1, last_query_at=e.queried_at, last_query_result=result[:64])
        if e.step is not None and e.step >= row["query_step"]:  # the steps it skipped count as done
            row.update(query_step=e.step + 1, query_taken_at=None)
    elif kind == "QueriesExhausted":
        row["queries_exhausted"] = True
    waiting = row["status"] == "PENDING" and row["registered"] and not row["queries_exhausted"]
    row["next_query_at"] = (due_at(row["registered_at"], schedule, row["query_step"], e.originator_id)
                            if waiting and row["registered_at"] is not None else None)


class OrderStatusProjection:
    name = "order_status"
    tables = (t,)

    def __init__(self, *, query_schedule: Sequence[float] = ()) -> None:
        self.query_schedule = tuple(query_schedule)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        orders = [(position, e) for position, e in events if type(e).__qualname__.startswith("Order.")]
        if not orders:
            return  # alerts and other streams are not orders
        # An order opened in this batch has no row yet (each event is applied once): only the others are read.
        opened = {e.originator_id for _, e in orders if type(e).__name__ == "Opened"}
        ids = list({str(e.originator_id) for _, e in orders if e.originator_id not in opened})
        rows = ({row.order_id: dict(row._mapping) for row in conn.execute(sa.select(t).where(t.c.order_id.in_(ids)))}
                if ids else {})
        old, touched = set(rows), set()
        for position, e in orders:
            order_id, kind = str(e.originator_id), type(e).__name__
            if kind == "Opened":
                rows[order_id] = _opened(position, e)
            _fold(rows[order_id], kind, e)
            _fold_queries(rows[order_id], kind, e, self.query_schedule)
            rows[order_id].update(last_version=e.originator_version, updated_at=e.timestamp)
            touched.add(order_id)
        insert_many(conn, t, [rows[order_id] for order_id in touched - old])
        if changed := [rows[order_id] for order_id in touched & old]:
            keep = {"id", "order_id", "app_id", "auth_app_id", "out_trade_no"}
            conn.execute(t.update().where(t.c.order_id == sa.bindparam("key_order_id")).values(
                {c.name: sa.bindparam(f"new_{c.name}", type_=c.type) for c in t.columns if c.name not in keep}),
                [{"key_order_id": row["order_id"], **{f"new_{k}": v for k, v in row.items() if k not in keep}}
                 for row in changed])
