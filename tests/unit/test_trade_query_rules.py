"""The Order's rules for Alipay's answers to trade queries, and the query schedule, without infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order, Status
from ledger.domain.trade_query import SCHEDULED, SOURCE, QueryAnswer, due_at, latest_due
from tests.support.notices import notification

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def answer(trade_status: str = "TRADE_SUCCESS", *, total_amount: str = "88.00", code: str = "10000",
           sub_code: str = "", **fields: Any) -> QueryAnswer:
    if code != "10000":
        return QueryAnswer.of(code, sub_code, {"code": code, "sub_code": sub_code})
    body = {"code": code, "msg": "Success", "trade_status": trade_status, "trade_no": "2026120122001400001",
            "out_trade_no": "T1", "total_amount": total_amount, "receipt_amount": total_amount,
            "send_pay_date": "2026-12-01 20:00:00" if trade_status != "WAIT_BUYER_PAY" else "", **fields}
    return QueryAnswer.of(code, sub_code, body)


def registered(amount: str = "88.00") -> Order:
    order = Order(app_id="2021000000000001", out_trade_no="T1")
    order.register(Decimal(amount), "a book")
    order.collect_events()
    return order


def ask(order: Order, reply: QueryAnswer, *, step: int | None = 0, last: bool = False) -> list[str]:
    order.record_query(reply, text='{"alipay_trade_query_response":{}}', key="fp", step=step, source=SCHEDULED,
                       who="schedule", queried_at=NOW, last=last)
    return [type(e).__name__ for e in order.collect_events()]


def deliver(order: Order, params: dict[str, str]) -> list[str]:
    order.receive(TradeNotice.from_params(params), params, delivery_id=uuid4().hex, received_at=NOW,
                  remote_addr="127.0.0.1")
    return [type(e).__name__ for e in order.collect_events()]


def test_a_paid_answer_confirms_the_payment_marked_as_found_by_the_query() -> None:
    order = registered()
    assert ask(order, answer()) == ["TradeQueried", "PaymentConfirmed"]
    assert order.status is Status.PAID
    assert order.payment is not None and order.payment["source"] == SOURCE
    assert order.payment["trade_no"] == "2026120122001400001" and order.query_steps == 1


def test_the_notification_that_comes_after_a_paid_answer_is_recorded_and_confirms_nothing_twice() -> None:
    order = registered()
    ask(order, answer())
    params = notification("T1", trade_no="2026120122001400001")
    assert deliver(order, params) == ["CallbackReceived"]


def test_a_notification_that_disagrees_with_the_answer_raises_an_anomaly() -> None:
    order = registered()
    ask(order, answer())
    assert deliver(order, notification("T1", trade_no="2026999999999999999")) == ["CallbackReceived", "AnomalyFound"]
    assert order.anomalies and order.anomalies[0].startswith("query_disagrees:")


def test_a_paid_answer_of_another_amount_than_registered_confirms_nothing_and_is_a_mismatch() -> None:
    order = registered("88.00")
    assert ask(order, answer(total_amount="8.80")) == ["TradeQueried", "AmountMismatch"]
    assert order.status is Status.PENDING


def test_a_finished_answer_confirms_and_finishes() -> None:
    order = registered()
    assert ask(order, answer("TRADE_FINISHED")) == ["TradeQueried", "PaymentConfirmed", "TradeFinished"]


def test_a_closed_answer_closes_an_unpaid_order() -> None:
    order = registered()
    assert ask(order, answer("TRADE_CLOSED", send_pay_date="")) == ["TradeQueried", "TradeClosed"]
    assert order.status is Status.CLOSED and order.close_reason == "unpaid"


def test_a_trade_closed_after_a_payment_no_notification_told_of_is_flagged_not_booked() -> None:
    order = registered()
    assert ask(order, answer("TRADE_CLOSED")) == ["TradeQueried", "AnomalyFound"]
    assert order.status is Status.PENDING


def test_waiting_for_the_buyer_or_no_trade_yet_changes_nothing_but_the_step() -> None:
    order = registered()
    assert ask(order, answer("WAIT_BUYER_PAY"), step=0) == ["TradeQueried"]
    assert ask(order, answer(code="40004", sub_code="ACQ.TRADE_NOT_EXIST"), step=1) == ["TradeQueried"]
    assert order.status is Status.PENDING and order.query_steps == 2


def test_an_answer_saying_unpaid_about_a_paid_order_is_an_anomaly() -> None:
    order = registered()
    deliver(order, notification("T1"))
    assert ask(order, answer("WAIT_BUYER_PAY"), step=None) == ["TradeQueried", "AnomalyFound"]


def test_an_answer_agreeing_with_the_notifications_raises_nothing() -> None:
    order = registered()
    params = notification("T1")
    deliver(order, params)
    reply = answer(trade_no=params["trade_no"])
    assert ask(order, reply, step=None) == ["TradeQueried"]


def test_a_step_is_taken_once_within_its_lease_and_again_after_it() -> None:
    order = registered()
    assert order.take_query_step(0, NOW, LEASE)
    assert not order.take_query_step(0, NOW + LEASE / 2, LEASE)
    assert order.take_query_step(0, NOW + LEASE, LEASE)  # its worker died: another takes it


def test_a_step_done_is_not_taken_again_and_overdue_ones_are_skipped_for_the_latest() -> None:
    order = registered()
    ask(order, answer("WAIT_BUYER_PAY"), step=0)
    assert not order.take_query_step(0, NOW, LEASE)
    assert order.take_query_step(3, NOW, LEASE)  # steps 1 and 2 overdue too: one question answers for them
    ask(order, answer("WAIT_BUYER_PAY"), step=3)
    assert order.query_steps == 4 and not order.take_query_step(2, NOW, LEASE)


def test_while_a_step_is_taken_no_other_step_is_taken_either() -> None:
    order = registered()
    assert order.take_query_step(0, NOW, LEASE)
    assert not order.take_query_step(1, NOW + LEASE / 2, LEASE)


def test_no_step_is_taken_once_the_order_is_paid() -> None:
    order = registered()
    deliver(order, notification("T1"))
    assert not order.take_query_step(0, NOW, LEASE)


def test_the_last_step_unpaid_marks_the_schedule_exhausted_once() -> None:
    order = registered()
    assert ask(order, answer("WAIT_BUYER_PAY"), step=0, last=True) == ["TradeQueried", "QueriesExhausted"]
    assert order.queries_exhausted and not order.take_query_step(1, NOW, LEASE)


def test_a_failed_query_is_recorded_applies_nothing_and_moves_the_schedule_on() -> None:
    order = registered()
    order.record_query_failure(reason="bad_signature", retryable=False, error="does not verify", text="{...}",
                               step=0, source=SCHEDULED, who="schedule", queried_at=NOW, last=False)
    assert [type(e).__name__ for e in order.collect_events()] == ["TradeQueryFailed"]
    assert order.status is Status.PENDING and order.query_steps == 1


def test_a_manual_query_does_not_use_up_a_step_of_the_schedule() -> None:
    order = registered()
    ask(order, answer("WAIT_BUYER_PAY"), step=None)
    assert order.query_steps == 0 and order.take_query_step(0, NOW, LEASE)


def test_steps_fall_after_each_delay_from_registration_spread_by_at_most_a_tenth() -> None:
    schedule = (240.0, 600.0, 3600.0)
    for _ in range(50):
        order_id = uuid4()
        first, second, third = (due_at(NOW, schedule, step, order_id) for step in range(3))
        assert first is not None and second is not None and third is not None
        assert timedelta(seconds=240) <= first - NOW < timedelta(seconds=264)
        assert timedelta(seconds=840) <= second - NOW < timedelta(seconds=924)
        assert timedelta(seconds=4440) <= third - NOW < timedelta(seconds=4884)
        assert due_at(NOW, schedule, 3, order_id) is None


def test_a_burst_of_registrations_is_spread_over_the_window() -> None:
    dues = sorted(due_at(NOW, (240.0,), 0, uuid4()) for _ in range(1000))  # type: ignore[type-var]
    assert dues[-1] - dues[0] > timedelta(seconds=20)  # not all in one second


def test_a_scheduled_not_paid_answer_racing_the_notified_payment_raises_no_anomaly() -> None:
    order = registered()
    assert order.take_query_step(0, NOW, LEASE)
    deliver(order, notification("T1"))  # paid while the question was on its way
    assert ask(order, answer("WAIT_BUYER_PAY"), step=0) == ["TradeQueried"]


def test_overdue_steps_are_asked_once_for_the_latest_of_them() -> None:
    order_id, schedule = uuid4(), (240.0, 600.0, 600.0, 3600.0)
    assert latest_due(NOW, schedule, 0, order_id, NOW + timedelta(seconds=300)) == 0
    assert latest_due(NOW, schedule, 0, order_id, NOW + timedelta(days=2)) == 3  # down for days: one question
    assert latest_due(NOW, schedule, 2, order_id, NOW + timedelta(seconds=1500)) == 2
