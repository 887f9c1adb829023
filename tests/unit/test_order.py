"""The trade status machine of the Order aggregate, without any infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from ledger.domain.errors import InvalidRequest, OrderConflict
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order, Status
from tests.support.notices import notification


def deliver(order: Order, params: dict[str, str]) -> list[str]:
    """Deliver one notification; return the names of the events it appended."""
    order.collect_events()
    order.receive(TradeNotice.from_params(params), params, delivery_id=uuid4().hex,
                  received_at=datetime.now(UTC), remote_addr="127.0.0.1")
    return [type(e).__name__ for e in order.collect_events()]


def new_order(registered_amount: str | None = None) -> Order:
    order = Order(app_id="2021000000000001", out_trade_no="T1")
    if registered_amount:
        order.register(Decimal(registered_amount), "a book")
    return order


def test_first_trade_success_confirms_payment_with_its_amounts() -> None:
    order = new_order("88.00")
    assert deliver(order, notification("T1")) == ["CallbackReceived", "PaymentConfirmed"]
    assert order.status is Status.PAID
    assert order.payment is not None and order.payment["total_amount"] == Decimal("88.00")


def test_duplicate_notification_confirms_payment_once_and_is_recorded_as_duplicate() -> None:
    order, params = new_order(), notification("T1")
    deliver(order, params)
    assert deliver(order, params) == ["CallbackReceived"]
    assert order.deliveries[params["notify_id"]] == 2


def test_partial_refund_keeps_the_trade_paid_and_is_recorded_once_per_out_biz_no() -> None:
    order = new_order("88.00")
    deliver(order, notification("T1"))
    refund = notification("T1", refund_fee="10.00", out_biz_no="R1", gmt_refund="2026-11-21 11:00:00.123")
    assert deliver(order, refund) == ["CallbackReceived", "RefundRecorded"]
    assert deliver(order, notification("T1", refund_fee="10.00", out_biz_no="R1")) == ["CallbackReceived"]
    assert (order.status, order.refunded) == (Status.PAID, Decimal("10.00"))


def test_refund_fee_is_cumulative_so_a_second_refund_adds_only_the_difference() -> None:
    order = new_order()
    deliver(order, notification("T1"))
    deliver(order, notification("T1", refund_fee="10.00", out_biz_no="R1"))
    deliver(order, notification("T1", refund_fee="25.00", out_biz_no="R2"))
    assert order.refunded == Decimal("25.00")


def test_full_refund_closes_a_paid_trade() -> None:
    order = new_order()
    deliver(order, notification("T1"))
    events = deliver(order, notification("T1", trade_status="TRADE_CLOSED", refund_fee="88.00", out_biz_no="R9"))
    assert events == ["CallbackReceived", "RefundRecorded", "TradeClosed"]
    assert (order.status, order.close_reason, order.refunded) == (Status.CLOSED, "refunded", Decimal("88.00"))


def test_close_without_refund_fee_is_an_unpaid_close_and_confirms_nothing() -> None:
    order = new_order("88.00")
    assert deliver(order, notification("T1", trade_status="TRADE_CLOSED")) == ["CallbackReceived", "TradeClosed"]
    assert (order.status, order.close_reason, order.payment) == (Status.CLOSED, "unpaid", None)


def test_finished_before_success_confirms_payment_and_later_success_does_not_go_back() -> None:
    order = new_order()
    assert deliver(order, notification("T1", trade_status="TRADE_FINISHED")) == [
        "CallbackReceived", "PaymentConfirmed", "TradeFinished"]
    assert deliver(order, notification("T1")) == ["CallbackReceived"]
    assert order.status is Status.FINISHED


def test_wait_buyer_pay_is_recorded_but_changes_nothing() -> None:
    order = new_order()
    assert deliver(order, notification("T1", trade_status="WAIT_BUYER_PAY")) == ["CallbackReceived"]
    assert order.status is Status.PENDING


def test_amount_differing_from_the_registered_amount_records_a_mismatch_and_no_payment() -> None:
    order = new_order("99.00")
    assert deliver(order, notification("T1", total_amount="88.00")) == ["CallbackReceived", "AmountMismatch"]
    assert deliver(order, notification("T1", total_amount="88.00")) == ["CallbackReceived"]
    assert (order.status, order.payment, order.mismatched_amounts) == (Status.PENDING, None, ["88.00"])


def test_registering_after_a_payment_of_another_amount_records_a_mismatch() -> None:
    order = new_order()
    deliver(order, notification("T1", total_amount="88.00"))
    order.register(Decimal("90.00"), "")
    assert [type(e).__name__ for e in order.collect_events()] == ["OrderRegistered", "AmountMismatch"]


def test_registering_again_with_the_same_details_changes_nothing_and_with_others_conflicts() -> None:
    order = new_order("88.00")
    order.collect_events()
    order.register(Decimal("88.00"), "a book")
    assert order.collect_events() == []
    with pytest.raises(OrderConflict):
        order.register(Decimal("89.00"), "a book")


@pytest.mark.parametrize("field, value", [("total_amount", "8.8.8"), ("total_amount", "1.001"),
                                          ("refund_fee", "-1.00"), ("trade_status", "TRADE_MAYBE"),
                                          ("notify_id", ""), ("total_amount", "")])
def test_unusable_fields_of_a_verified_notification_are_rejected_before_touching_the_order(
        field: str, value: str) -> None:
    with pytest.raises(InvalidRequest):
        TradeNotice.from_params(notification("T1", **{field: value}))


def test_a_paid_notification_of_zero_is_an_anomaly_and_confirms_nothing() -> None:
    order = new_order()
    assert deliver(order, notification("T1", total_amount="0.00")) == ["CallbackReceived", "AnomalyFound"]
    assert order.status is Status.PENDING and order.anomalies


def test_a_refund_of_more_than_was_paid_is_an_anomaly_and_books_no_refund_nor_close() -> None:
    order = new_order("88.00")
    deliver(order, notification("T1"))
    refund = notification("T1", refund_fee="1000.00", out_biz_no="R1", trade_status="TRADE_CLOSED")
    assert deliver(order, refund) == ["CallbackReceived", "AnomalyFound"]
    assert order.refunded == Decimal("0.00") and order.status is Status.PAID
    assert deliver(order, refund) == ["CallbackReceived"]  # a copy flags nothing new


def test_copies_beyond_the_cap_of_one_notify_id_are_not_recorded() -> None:
    order, params = new_order(), notification("T1")
    recorded = [order.receive(TradeNotice.from_params(params), params, delivery_id=uuid4().hex,
                              received_at=datetime.now(UTC), remote_addr="127.0.0.1", max_copies=3)
                for _ in range(5)]
    assert recorded == [True, True, True, False, False]
    assert order.deliveries[params["notify_id"]] == 3
