"""A day of trades both ways: booked in the ledger through Alipay's signed notifications (as they would have come),
and listed on the bill Alipay would give for it (ledger.alipay.sandbox_bill)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox import trade_number
from ledger.alipay.sandbox_bill import DAY, BillTrade, bill_zip
from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback, RegisterOrder
from projections.tables import journal_entries
from tests.support.alipay import APP_ID, SandboxAlipay

TIME = "%Y-%m-%d %H:%M:%S"


def at(day: date = DAY, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=CHINA_STANDARD_TIME)


def payment(out_trade_no: str, amount: str, when: datetime, *, fee: str = "0.00", share: str = "0.00",
            receipt: str | None = None) -> BillTrade:
    return BillTrade("payment", out_trade_no, trade_number(out_trade_no), Decimal(amount), when, fee=Decimal(fee),
                     share=Decimal(share), receipt_amount=Decimal(receipt) if receipt is not None else None)


def refund(out_trade_no: str, amount: str, when: datetime, request_no: str, *, fee: str = "0.00") -> BillTrade:
    return BillTrade("refund", out_trade_no, trade_number(out_trade_no), Decimal(amount), when, fee=Decimal(fee),
                     refund_request_no=request_no)


def book(ledger: Ledger, alipay: SandboxAlipay, trades: Iterable[BillTrade], *, register: bool = False,
         paid: dict[str, Decimal] | None = None) -> None:
    """Record each trade as Alipay notifies it: a payment's TRADE_SUCCESS, a refund's notification with the total
    refunded so far (refund_fee) and its out_biz_no. `register`: the merchant registered each paid order first.
    `paid`: what each order was paid, for refunds of payments booked in an earlier call."""
    paid = {} if paid is None else paid
    refunded: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for trade in trades:
        when = trade.finished_at.strftime(TIME)
        if trade.kind == "payment":
            if register:
                ledger.service.register_order(RegisterOrder(APP_ID, trade.out_trade_no, trade.amount, "测试商品"))
            paid[trade.out_trade_no] = trade.amount
            body = alipay.body(trade.out_trade_no, total_amount=str(trade.amount), gmt_payment=when)
        else:
            refunded[trade.out_trade_no] += trade.amount
            body = alipay.body(trade.out_trade_no, total_amount=str(paid[trade.out_trade_no]),
                               refund_fee=str(refunded[trade.out_trade_no]), out_biz_no=trade.refund_request_no,
                               gmt_refund=when, gmt_payment=when)
        ledger.service.record_callback(RecordCallback(body, "198.51.100.7"))


def import_and_match(ledger: Ledger, trades: list[BillTrade], day: date = DAY, **bill: Any) -> Any:
    assert ledger.bills is not None and ledger.reconcile is not None
    ledger.bills.import_bill(bill_zip(trades, day=day, **bill), source="test", who="finance")
    return ledger.reconcile.match_day(day, who="finance test")


def clearing_movement(ledger: Ledger, day: date = DAY) -> Decimal:
    """What the journal's alipay_clearing account moved by on `day`."""
    assert ledger.engine is not None and ledger.runner is not None
    ledger.runner.catch_up()
    t = journal_entries
    with ledger.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(t.c.amount), 0))
                           .where(t.c.account == "alipay_clearing", t.c.day == day)) or Decimal("0.00")


def next_day(day: date = DAY) -> date:
    return day + timedelta(days=1)
