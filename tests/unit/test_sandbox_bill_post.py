"""What the stand-in gateway's `POST /sandbox/bills` takes: a day and its trades, read strictly, and numbered as the
sandbox's notifications number them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.alipay.bill import read_bill
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox import trade_number
from ledger.alipay.sandbox_bill import bill_zip
from ledger.alipay.sandbox_bill_post import bill_trades

TODAY = date(2026, 12, 1)
TOUR = {"trades": [{"out_trade_no": "T-1001", "amount": "88.00", "fee": "0.53"},
                   {"kind": "refund", "out_trade_no": "T-1001", "amount": "8.00", "refund_request_no": "RF-1"},
                   {"out_trade_no": "T-1003", "amount": "5", "finished_at": "2026-12-01 23:59:59"}]}


def test_the_trades_become_the_bill_alipay_gives_numbered_as_the_sandboxs_notifications() -> None:
    day, trades = bill_trades(TOUR, TODAY)
    bill = read_bill(bill_zip(trades, day=day))
    assert bill.bill_date == TODAY
    rows = [(r.kind, r.trade_no, r.out_trade_no, r.refund_request_no, r.total_amount, r.fee) for r in bill.rows]
    assert rows == [("payment", trade_number("T-1001"), "T-1001", "", Decimal("88.00"), Decimal("-0.53")),
                    ("refund", trade_number("T-1001"), "T-1001", "RF-1", Decimal("-8.00"), Decimal("0.00")),
                    ("payment", trade_number("T-1003"), "T-1003", "", Decimal("5.00"), Decimal("0.00"))]
    noon, last = (datetime(2026, 12, 1, 12, tzinfo=CHINA_STANDARD_TIME),
                  datetime(2026, 12, 1, 23, 59, 59, tzinfo=CHINA_STANDARD_TIME))
    assert [r.finished_at for r in bill.rows] == [noon, noon, last]  # noon of the day unless the trade says


def test_the_bill_is_of_the_day_given_or_else_of_today() -> None:
    assert bill_trades({"trades": []}, TODAY)[0] == TODAY
    day, [trade] = bill_trades({"bill_date": "2026-11-30", "trades": [{"out_trade_no": "T-1", "amount": "1.00"}]},
                               TODAY)
    assert day == date(2026, 11, 30) and trade.finished_at.date() == day


def test_a_share_and_a_discount_are_written_where_alipay_writes_them() -> None:
    _, trades = bill_trades({"trades": [{"out_trade_no": "T-1", "amount": "100.00", "receipt_amount": "90.00",
                                         "fee": "0.54", "share": "1.00"}]}, TODAY)
    [row] = read_bill(bill_zip(trades, day=TODAY)).rows
    assert (row.total_amount, row.receipt_amount, row.fee, row.share) == (
        Decimal("100.00"), Decimal("90.00"), Decimal("-0.54"), Decimal("-1.00"))


def trade(**fields: Any) -> dict[str, Any]:
    return {"trades": [{"out_trade_no": "T-1", "amount": "88.00", **fields}]}


@pytest.mark.parametrize(("body", "says"), [
    ([], "give a JSON object"),
    ({"trades": [], "day": "2026-12-01"}, "unknown field 'day'"),
    ({}, '"trades" must be a list'),
    ({"trades": {"out_trade_no": "T-1"}}, '"trades" must be a list'),
    ({"bill_date": "01/12/2026", "trades": []}, "bill_date must be a day as YYYY-MM-DD"),
    ({"bill_date": "2026-02-30", "trades": []}, "is not a day of the calendar"),
    ({"trades": ["T-1"]}, "trade 1 must be a JSON object"),
    (trade(fees="0.53"), "trade 1: unknown field 'fees'"),
    (trade(kind="chargeback"), "kind must be payment or refund"),
    ({"trades": [{"amount": "88.00"}]}, "out_trade_no must be a non-empty string"),
    (trade(out_trade_no="T-1,T-2"), "has a comma"),
    ({"trades": [{"out_trade_no": "T-1"}]}, "trade 1 (T-1): amount must be yuan as a string"),
    (trade(amount=88.0), 'amount must be yuan as a string such as "88.00", not 88.0'),
    (trade(amount="1.234"), "amount must be yuan"),
    (trade(amount="-1.00"), "amount must be yuan"),
    (trade(amount="0.00"), "amount must be more than 0.00"),
    (trade(fee="90.00"), "fee 90.00 is more than the amount 88.00"),
    (trade(receipt_amount="88.01"), "receipt_amount 88.01 is more than the amount"),
    (trade(refund_request_no=7), "refund_request_no must be a string"),
    (trade(finished_at="2026-12-01T10:00:00"), 'finished_at must be "YYYY-MM-DD HH:MM:SS"'),
    (trade(finished_at="2026-12-01 25:00:00"), 'finished_at must be "YYYY-MM-DD HH:MM:SS"'),
    (trade(finished_at="2026-12-02 00:00:00"), "finished at 2026-12-02 00:00:00, not on the bill's day 2026-12-01"),
])
def test_a_body_that_is_not_a_bill_is_refused_saying_what_is_wrong(body: object, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        bill_trades(body, TODAY)
    assert says in str(refused.value)
