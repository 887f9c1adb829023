"""Finance's books: daily totals per China-Standard-Time day, and a double-entry journal.

A payment debits Alipay clearing and credits sales; a refund debits sales refunds and credits Alipay
clearing. Debits are positive, credits negative: every entry's lines sum to zero.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from projections.common import ZERO, OrderKeys, cst_day, upsert_add
from projections.tables import daily_totals, journal_entries

CLEARING, SALES, REFUNDS = "alipay_clearing", "sales", "sales_refunds"


def _money_event(event: Any) -> tuple[str, Any, str] | None:
    """(kind, amount, Alipay time of the movement) for payments and refunds that move money."""
    kind = type(event).__name__
    if kind == "PaymentConfirmed" and event.total_amount:
        return "payment", event.total_amount, event.gmt_payment
    if kind == "RefundRecorded" and event.amount > ZERO:
        return "refund", event.amount, event.gmt_refund
    return None


class DailyTotalsProjection:
    name = "daily_totals"
    tables = (daily_totals,)

    def __init__(self) -> None:
        self.keys = OrderKeys()

    def apply(self, conn: sa.Connection, event: Any, position: int) -> None:
        money = _money_event(event)
        if money is None:
            return
        kind, amount, when = money
        app_id, _ = self.keys(conn, event.originator_id)
        paid, refunded = (amount, ZERO) if kind == "payment" else (ZERO, amount)
        upsert_add(conn, daily_totals, {"day": cst_day(when, event.timestamp), "app_id": app_id}, {
            "payments_count": int(kind == "payment"), "payments_amount": paid,
            "refunds_count": int(kind == "refund"), "refunds_amount": refunded, "net_amount": paid - refunded})


class JournalProjection:
    name = "journal_entries"
    tables = (journal_entries,)

    def __init__(self) -> None:
        self.keys = OrderKeys()

    def apply(self, conn: sa.Connection, event: Any, position: int) -> None:
        money = _money_event(event)
        if money is None:
            return
        kind, amount, when = money
        app_id, out_trade_no = self.keys(conn, event.originator_id)
        debit, credit = (CLEARING, SALES) if kind == "payment" else (REFUNDS, CLEARING)
        memo = f"payment {event.trade_no}" if kind == "payment" else f"refund {event.out_biz_no or event.refund_key}"
        common = {"position": position, "day": cst_day(when, event.timestamp), "app_id": app_id,
                  "out_trade_no": out_trade_no, "memo": memo[:64]}
        conn.execute(journal_entries.insert(), [
            {**common, "line": 1, "account": debit, "amount": amount},
            {**common, "line": 2, "account": credit, "amount": -amount},
        ])
