"""Alipay's limits on what the ledger books, and what a notification beyond them is."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import check_notification, check_registration, parse_amount, parse_time
from ledger.domain.notice import TradeNotice
from tests.support.notices import notification


@pytest.mark.parametrize("text", ["９９.００", "٩٩.٠٠", "99.0０", "1000000000.00", "100000000.01", "-1.00", "1e3",
                                  " 1.00", "1.001", "", "9999999999999.99"])
def test_an_amount_beyond_alipays_form_or_range_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_amount(text, field="total_amount")
    assert refused.value.reason == "bad_amount"


def test_amounts_from_zero_to_one_hundred_million_with_ascii_digits_are_read_exactly() -> None:
    assert parse_amount("0.00", field="x") == Decimal("0.00")
    assert parse_amount("100000000.00", field="x") == Decimal("100000000.00")
    assert parse_amount("88.1", field="x") == Decimal("88.10")


@pytest.mark.parametrize("text", ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "2026-02-30 10:00:00",
                                  "2026-11-21T10:00:00", "2026-11-21 10:00", "yesterday", "2003-12-31 23:59:59"])
def test_a_time_that_is_not_alipays_form_or_a_sane_year_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_time(text, field="gmt_payment")


def test_alipays_times_with_or_without_milliseconds_are_read() -> None:
    assert parse_time("2026-11-21 11:00:00.123", field="gmt_refund").microsecond == 123000
    assert parse_time("2026-11-21 11:00:00", field="gmt_refund").hour == 11


@pytest.mark.parametrize("field, value", [
    ("out_trade_no", "A" * 65), ("out_trade_no", "A\x00B"), ("trade_no", "2" * 65), ("out_biz_no", "R\nX"),
    ("subject", "s" * 257), ("subject", "a\x00b"), ("buyer_id", "2" * 65), ("notify_id", "n" * 129),
    ("gmt_payment", "0001-01-01 00:00:00"), ("gmt_close", "9999-12-31 23:59:59"), ("total_amount", "９９.００"),
    ("refund_fee", "9999999999999.99"), ("auth_app_id", "\x7f"),
])
def test_a_notification_beyond_any_limit_is_not_a_trade_notice(field: str, value: str) -> None:
    with pytest.raises(InvalidRequest):
        TradeNotice.from_params({**notification("T1"), field: value})


def test_a_notification_at_every_limit_is_a_trade_notice() -> None:
    params = notification("T" * 64, trade_no="2" * 64, subject="测" * 256, total_amount="100000000.00",
                          receipt_amount="100000000.00", buyer_pay_amount="0.00", notify_id="n" * 128)
    check_notification(params)
    assert TradeNotice.from_params(params).total_amount == Decimal("100000000.00")


@pytest.mark.parametrize("out_trade_no, amount, subject", [
    ("", "1.00", ""), ("A" * 65, "1.00", ""), ("A\x00", "1.00", ""), ("A", "0.00", ""),
    ("A", "9999999999999.99", ""), ("A", "1.00", "x\x00"), ("A", "1.00", "x" * 257), ("A", "１.００", ""),
])
def test_a_registration_beyond_the_limits_is_refused_with_its_reason(out_trade_no: str, amount: str,
                                                                      subject: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_registration(out_trade_no, amount, subject)
    assert str(refused.value)
