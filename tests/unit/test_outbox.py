"""Delivery bookkeeping of the Order aggregate: due times, lost attempts, the retry budget, manual actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from ledger.domain import outbox
from ledger.domain.errors import InvalidRequest, NothingToDo
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order
from tests.support.notices import notification

LEASE = timedelta(seconds=60)
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class Policy:
    max_retries = 2

    def delay(self, retry: int) -> float:
        return 10.0 * 2 ** (retry - 1)


def paid_order() -> Order:
    order = Order(app_id="2021000000000001", out_trade_no="O1")
    params = notification("O1")
    order.receive(TradeNotice.from_params(params), params, delivery_id=uuid4().hex, received_at=T0, remote_addr="")
    return order


def test_a_retry_is_not_due_before_its_time_and_is_due_after() -> None:
    order = paid_order()
    attempt = order.begin_delivery("payment", T0, LEASE, Policy())
    assert attempt == 1
    assert order.finish_delivery("payment", 1, ok=False, error="HTTP 503", now=T0, policy=Policy()) == "retry"
    assert order.begin_delivery("payment", T0 + timedelta(seconds=5), LEASE, Policy()) is None
    assert order.begin_delivery("payment", T0 + timedelta(seconds=10), LEASE, Policy()) == 2


def test_an_attempt_in_flight_is_left_alone_until_its_lease_runs_out() -> None:
    order = paid_order()
    order.begin_delivery("payment", T0, LEASE, Policy())
    assert order.begin_delivery("payment", T0 + timedelta(seconds=30), LEASE, Policy()) is None
    assert order.begin_delivery("payment", T0 + LEASE, LEASE, Policy()) == 2


def test_lost_attempts_count_against_the_budget_so_a_delivery_that_never_finishes_is_abandoned() -> None:
    order, now = paid_order(), T0
    for expected in (1, 2, 3):  # 1 + max_retries attempts, every one of them lost with its worker
        assert order.begin_delivery("payment", now, LEASE, Policy()) == expected
        now += LEASE
    assert order.begin_delivery("payment", now, LEASE, Policy()) is None
    assert order.outbox["payment"]["state"] == "abandoned"


def test_an_outcome_is_recorded_once_and_a_late_one_is_stale() -> None:
    order = paid_order()
    order.begin_delivery("payment", T0, LEASE, Policy())
    assert order.finish_delivery("payment", 1, ok=True, error="", now=T0, policy=Policy()) == "succeeded"
    assert order.finish_delivery("payment", 1, ok=False, error="late", now=T0, policy=Policy()) == "stale"
    assert order.begin_delivery("payment", T0 + LEASE * 10, LEASE, Policy()) is None


def test_manual_actions_need_an_abandoned_delivery_and_resolving_needs_a_note() -> None:
    order = paid_order()
    with pytest.raises(NothingToDo):
        order.request_manual_retry("ops", "")
    for attempt in (1, 2, 3):
        order.begin_delivery("payment", T0 + timedelta(hours=attempt), LEASE, Policy())
        order.finish_delivery("payment", attempt, ok=False, error="HTTP 500", now=T0 + timedelta(hours=attempt),
                              policy=Policy())
    assert order.outbox["payment"]["state"] == "abandoned"
    with pytest.raises(InvalidRequest):
        order.resolve_manually("ops", "  ")
    assert order.request_manual_retry("ops", "they are back") == ["payment"]
    assert order.begin_delivery("payment", T0 + timedelta(hours=5), LEASE, Policy()) == 4  # a new round of three


def test_an_unknown_change_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        paid_order().begin_delivery("refund:nope", T0, LEASE, Policy())


def test_the_attempt_after_the_last_retry_is_the_last_and_a_manual_retry_starts_a_new_round() -> None:
    entry = outbox.new_entry("payment")
    # 1 + max_retries attempts in a round: the first, then two retries.
    assert [outbox.exhausted(entry, attempt, Policy()) for attempt in (1, 2, 3)] == [False, False, True]
    entry["round_start"] = 3  # an operator asked for a retry after the third
    assert [outbox.exhausted(entry, attempt, Policy()) for attempt in (4, 5, 6)] == [False, False, True]
