"""Reconciliation's read model: the ledger's refunds one by one (what bill rows are matched with), and for finance a
row per app and day matched with both sides' totals, and every finding with its state (ledger.domain.reconciliation).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from projections.common import ZERO, Batch, OrderKeys, alipay_time, cst_day, insert_many
from projections.tables import reconciliation_days as days
from projections.tables import reconciliation_findings as findings
from projections.tables import refunds as t_refunds


class RefundsProjection:
    name = "refunds"
    tables = (t_refunds,)

    def __init__(self) -> None:
        self.keys = OrderKeys()

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        self.keys.learn(events)
        rows = []
        for position, e in events:
            if type(e).__qualname__ == "Order.RefundRecorded" and e.amount > ZERO:
                key = self.keys(conn, e.originator_id)
                rows.append({"position": position, "app_id": key.app_id, "auth_app_id": key.auth_app_id,
                             "out_trade_no": key.out_trade_no, "out_biz_no": e.out_biz_no, "amount": e.amount,
                             "refunded_at": alipay_time(e.gmt_refund), "day": cst_day(e.gmt_refund, e.timestamp)})
        insert_many(conn, t_refunds, rows)


def _amount(values: dict[str, str] | None, name: str) -> Decimal | None:
    text = (values or {}).get(name) or ""
    return Decimal(text) if text else None


class ReconciliationProjection:
    name = "reconciliation"
    tables = (findings, days)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        for position, e in events:
            kind = type(e).__qualname__
            if kind.startswith("ReconciliationDay."):
                self._day(conn, kind.split(".", 1)[1], e)
            elif kind.startswith("Finding."):
                self._finding(conn, position, kind.split(".", 1)[1], e)

    @staticmethod
    def _day(conn: sa.Connection, kind: str, e: Any) -> None:
        if kind == "DayOpened":
            insert_many(conn, days, [{"day_id": str(e.originator_id), "app_id": e.app_id,
                                      "day": date.fromisoformat(e.day), "runs": 0, "fees_posted": ZERO,
                                      "fetch_attempts": 0, "updated_at": e.timestamp}])
            return
        values: dict[str, Any] = {"updated_at": e.timestamp}
        if kind == "DayMatched":
            bill, ledger = e.bill, e.ledger
            values.update(runs=e.run, last_run_at=e.at, last_run_by=e.who, bill_id=e.bill_id,
                          bill_payments=int(bill["payments"]), bill_refunds=int(bill["refunds"]),
                          bill_total_amount=Decimal(bill["payment_amount"]),
                          bill_refund_amount=Decimal(bill["refund_amount"]), bill_fee=Decimal(bill["fee"]),
                          bill_share=Decimal(bill["share"]), bill_net=Decimal(bill["net"]),
                          ledger_payments=int(ledger["payments"]),
                          ledger_payment_amount=Decimal(ledger["payment_amount"]),
                          ledger_refunds=int(ledger["refunds"]), ledger_refund_amount=Decimal(ledger["refund_amount"]),
                          matched=e.counts.get("matched", 0), next_bill=e.next_bill, fetch_state=None,
                          fetch_error=None, next_fetch_at=None)
        elif kind == "FeesPosted":
            values["fees_posted"] = days.c.fees_posted + sum((Decimal(row[6]) for row in e.rows), ZERO)
        elif kind == "BillFetchTaken":
            values.update(fetch_attempts=e.attempt, fetch_state="fetching")
        elif kind == "BillFetchFailed":
            values.update(fetch_state="given_up" if e.final else "waiting", fetch_error=f"{e.reason}: {e.error}",
                          next_fetch_at=e.next_at)
        conn.execute(days.update().where(days.c.day_id == str(e.originator_id)).values(values))

    @staticmethod
    def _finding(conn: sa.Connection, position: int, kind: str, e: Any) -> None:
        where = findings.c.finding_id == str(e.originator_id)
        values: dict[str, Any] = {"last_version": e.originator_version}
        if kind == "FindingOpened":
            bill, ledger = e.bill or {}, e.ledger or {}
            insert_many(conn, findings, [{
                "finding_id": str(e.originator_id), "position": position, "app_id": e.app_id,
                "day": date.fromisoformat(e.day), "kind": e.kind, "key": e.key, "out_trade_no": e.out_trade_no,
                "request_no": e.request_no, "state": "carried" if e.carried else "open", "detail": e.detail,
                "bill_trade_no": bill.get("trade_no") or None, "bill_amount": _amount(bill, "total_amount"),
                "bill_fee": _amount(bill, "fee"), "bill_line": int(bill["line"]) if bill.get("line") else None,
                "ledger_trade_no": ledger.get("trade_no") or None, "ledger_status": ledger.get("status") or None,
                "ledger_amount": _amount(ledger, "paid_amount") or _amount(ledger, "amount"),
                "registered_amount": _amount(ledger, "registered_amount"), "opened_at": e.at,
                "settled_at": None, "settled_by": None, "note": None, "last_version": e.originator_version}])
            return
        if kind in ("FindingConfirmed", "FindingReopened"):
            values.update(state="open", detail=e.detail, settled_at=None, settled_by=None, note=None)
        elif kind == "FindingResolved":
            values.update(state="resolved", settled_at=e.timestamp, settled_by=e.who, note=e.note)
        elif kind == "FindingClosed":
            values.update(state="closed", settled_at=e.timestamp, settled_by=e.by, note=e.reason)
        conn.execute(findings.update().where(where).values(values))

