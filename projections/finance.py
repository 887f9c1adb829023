"""Finance's books: daily totals per China-Standard-Time day, and a double-entry journal.

A payment debits Alipay clearing and credits sales; a refund debits sales refunds and credits Alipay
clearing. Debits are positive, credits negative: every entry's lines sum to zero.

What Alipay's bill says it kept of each row the ledger agrees with (ledger.domain.reconciliation's FeesPosted) is
posted on the bill's day: 服务费 to `alipay_fees`, 分润 to `alipay_share`, a merchant's discount (订单金额 less
商家实收) to `merchant_discounts`, each against `alipay_clearing`, signed as the bill writes them (a refund's
returned fee goes the other way). So on a day whose rows all matched, the clearing account moves by exactly
the bill's 实收净额 (商家实收 + 服务费 + 分润).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from projections.common import ZERO, Batch, OrderKeys, cst_day, insert_many
from projections.tables import daily_totals, journal_entries

CLEARING, SALES, REFUNDS = "alipay_clearing", "sales", "sales_refunds"
FEES, SHARE, DISCOUNTS = "alipay_fees", "alipay_share", "merchant_discounts"


@dataclass(frozen=True)
class Movement:
    """Money moved by a payment or a refund, on a China-Standard-Time day, for one order."""

    kind: str  # payment or refund
    amount: Decimal
    day: date
    app_id: str
    out_trade_no: str
    auth_app_id: str


class _MoneyProjection:
    """What both books share: which events move money, and the order and day they belong to."""

    def __init__(self) -> None:
        self.keys = OrderKeys()

    def movement(self, conn: sa.Connection, event: Any) -> Movement | None:
        kind = type(event).__name__
        if kind == "PaymentConfirmed" and event.total_amount:
            found = ("payment", event.total_amount, event.gmt_payment)
        elif kind == "RefundRecorded" and event.amount > ZERO:
            found = ("refund", event.amount, event.gmt_refund)
        else:
            return None
        key = self.keys(conn, event.originator_id)
        return Movement(found[0], found[1], cst_day(found[2], event.timestamp), key.app_id, key.out_trade_no,
                        key.auth_app_id)


class DailyTotalsProjection(_MoneyProjection):
    name = "daily_totals"
    tables = (daily_totals,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        # Totals only add up: a batch is summed per day and app first, then one bulk upsert of the rows touched.
        self.keys.learn(events)
        sums: dict[tuple[date, str, str], dict[str, Any]] = {}
        for _, event in events:
            moved = self.movement(conn, event)
            if moved is None:
                continue
            paid, refunded = (moved.amount, ZERO) if moved.kind == "payment" else (ZERO, moved.amount)
            row = sums.setdefault((moved.day, moved.app_id, moved.auth_app_id), {
                "payments_count": 0, "payments_amount": ZERO, "refunds_count": 0, "refunds_amount": ZERO,
                "net_amount": ZERO})
            row["payments_count"] += int(moved.kind == "payment")
            row["payments_amount"] += paid
            row["refunds_count"] += int(moved.kind == "refund")
            row["refunds_amount"] += refunded
            row["net_amount"] += paid - refunded
        insert_many(conn, daily_totals, [{"day": day, "app_id": app_id, "auth_app_id": merchant, **amounts}
                                         for (day, app_id, merchant), amounts in sums.items()],
                    add_on_conflict=("day", "app_id", "auth_app_id"))


class JournalProjection(_MoneyProjection):
    name = "journal_entries"
    tables = (journal_entries,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        self.keys.learn(events)
        lines: list[dict[str, Any]] = []
        for position, event in events:
            if type(event).__qualname__ == "ReconciliationDay.FeesPosted":
                lines += _fee_lines(position, event)
                continue
            moved = self.movement(conn, event)
            if moved is None:
                continue
            debit, credit = (CLEARING, SALES) if moved.kind == "payment" else (REFUNDS, CLEARING)
            memo = (f"payment {event.trade_no}" if moved.kind == "payment"
                    else f"refund {event.out_biz_no or event.refund_key}")
            common = {"position": position, "day": moved.day, "app_id": moved.app_id,
                      "auth_app_id": moved.auth_app_id, "out_trade_no": moved.out_trade_no, "memo": memo}
            lines += [{**common, "line": 1, "account": debit, "amount": moved.amount},
                      {**common, "line": 2, "account": credit, "amount": -moved.amount}]
        insert_many(conn, journal_entries, lines)


def _fee_lines(position: int, event: Any) -> list[dict[str, Any]]:
    """One entry for a FeesPosted: for each row, what clearing gives up to fees, share and discount (the bill's
    signs: a payment's fee is negative, a refund's returned fee positive), the other account the opposite."""
    day, lines = date.fromisoformat(event.day), list[dict[str, Any]]()
    for _key, kind, out_trade_no, trade_no, total, receipt, fee, share in event.rows:
        moves = ((FEES, Decimal(fee), "fee"), (SHARE, Decimal(share), "share"),
                 (DISCOUNTS, Decimal(receipt) - Decimal(total), "discount"))
        for account, clearing, what in moves:
            if clearing == ZERO:
                continue
            memo = f"{what} {trade_no}" if kind == "payment" else f"refund {what} {trade_no}"
            common = {"position": position, "day": day, "app_id": event.app_id, "auth_app_id": "",
                      "out_trade_no": out_trade_no, "memo": memo}
            lines += [{**common, "line": len(lines) + 1, "account": CLEARING, "amount": clearing},
                      {**common, "line": len(lines) + 2, "account": account, "amount": -clearing}]
    return lines
