"""Trade queries against the real stand-in gateway over HTTP (it verifies the app's request signature and signs
its answers as Alipay does), on SQLite and on PostgreSQL: a payment whose notification never comes is found and
confirmed once; every answer is kept, re-verifiable; what cannot be believed is kept and applies nothing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.runtime import Sweeper
from ledger.bootstrap import Ledger
from ledger.domain.order import Order
from ledger.service.application import RecordCallback, RegisterOrder
from ledger.service.audit import recorded_callbacks_that_fail
from projections.queries import order_row
from projections.tables import alerts
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn
from tests.support.ledgers import kinds
from tests.support.refs import ref

SCHEDULE = "1s,1s,1s"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger], database_url: str, alipay_gateway: StandIn) -> Ledger:
    return make_ledger(database_url, LEDGER_QUERY_SCHEDULE=SCHEDULE, LEDGER_GATEWAY_TIMEOUT_SECONDS="1",
                       **alipay_gateway.env())


def registered(ledger: Ledger, amount: str = "88.00") -> tuple[str, str]:
    out_trade_no = ref("Q")
    done = ledger.service.register_order(RegisterOrder(APP_ID, out_trade_no, Decimal(amount), "a book"))
    return out_trade_no, str(done.order.id)


def step(ledger: Ledger, order_id: str, number: int) -> str:
    assert ledger.queries is not None
    return ledger.queries.run_step(order_id, number)


def events(ledger: Ledger, out_trade_no: str) -> list[Any]:
    return list(ledger.service.history(APP_ID, out_trade_no))


def row(ledger: Ledger, out_trade_no: str) -> dict[str, Any]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    found = order_row(ledger.engine, APP_ID, out_trade_no)
    assert found is not None
    return found


def raised(ledger: Ledger, kind: str) -> list[str]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    with ledger.engine.connect() as conn:
        return list(conn.scalars(sa.select(alerts.c.message).where(alerts.c.kind == kind)))


def test_a_payment_whose_notification_never_comes_is_confirmed_by_the_query(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")  # the buyer paid; the notification is lost
    assert step(ledger, order_id, 0) == "answered"
    assert kinds(ledger, out_trade_no)[-3:] == ["QueryStepTaken", "TradeQueried", "PaymentConfirmed"]
    shown = row(ledger, out_trade_no)
    assert (shown["status"], shown["paid_via"], shown["query_count"]) == ("PAID", "trade_query", 1)
    assert shown["paid_amount"] == Decimal("88.00") and shown["next_query_at"] is None


def test_the_notification_that_then_arrives_is_recorded_and_confirms_nothing_twice(
        ledger: Ledger, alipay_gateway: StandIn, alipay: SandboxAlipay) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    step(ledger, order_id, 0)
    ledger.service.record_callback(RecordCallback(alipay.body(out_trade_no), "198.51.100.7"))
    counted = Counter(kinds(ledger, out_trade_no))
    assert counted["PaymentConfirmed"] == 1 and counted["CallbackReceived"] == 1 and counted["AnomalyFound"] == 0
    assert row(ledger, out_trade_no)["paid_via"] == "trade_query"


def test_two_workers_running_one_step_ask_the_gateway_once(ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00", "WAIT_BUYER_PAY")
    alipay_gateway.sandbox.inject(times=1, delay=0.3)  # the first to take it is slow: the other must not ask
    results: list[str] = []
    workers = [threading.Thread(target=lambda: results.append(step(ledger, order_id, 0))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    asked = [r for r in alipay_gateway.sandbox.requests if out_trade_no in r.get("biz_content", "")]
    assert len(asked) == 1 and sorted(results) == ["answered", "not_due", "not_due"]


def test_a_recorded_answer_is_kept_exactly_as_received_and_re_verifies(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    step(ledger, order_id, 0)
    queried = next(e for e in events(ledger, out_trade_no) if type(e).__name__ == "TradeQueried")
    assert queried.text.startswith('{"alipay_trade_query_response":') and '"sign":"' in queried.text
    assert queried.key == ledger.settings.apps[APP_ID].keys.fingerprints[0]
    assert list(recorded_callbacks_that_fail(ledger.store, ledger.settings.apps)) == []


def test_an_answer_altered_in_the_store_is_found_by_the_audit(ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    step(ledger, order_id, 0)
    assert ledger.engine is not None
    table = "ledger_events" if ledger.engine.dialect.name == "postgresql" else "stored_events"
    with ledger.engine.begin() as conn:
        version, state = conn.execute(sa.text(f"SELECT originator_version, state FROM {table} "
                                              "WHERE topic LIKE '%TradeQueried'")).one()
        # Inside the stored answer's text (JSON within JSON): the amount Alipay signed, changed.
        altered = bytes(state).replace(b'\\"total_amount\\":\\"88.00\\"', b'\\"total_amount\\":\\"8.80\\"')
        assert altered != bytes(state)
        conn.execute(sa.text(f"UPDATE {table} SET state = :state WHERE topic LIKE '%TradeQueried' "
                             "AND originator_version = :version"), {"state": altered, "version": version})
    findings = list(recorded_callbacks_that_fail(ledger.store, ledger.settings.apps))
    assert len(findings) == 1 and "altered trade-query answer" in findings[0].problem
    assert findings[0].out_trade_no == out_trade_no


def test_an_answers_event_edited_to_say_other_than_alipay_signed_is_found_by_the_audit(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00", "WAIT_BUYER_PAY")
    step(ledger, order_id, 0)
    assert ledger.engine is not None
    table = "ledger_events" if ledger.engine.dialect.name == "postgresql" else "stored_events"
    with ledger.engine.begin() as conn:
        version, state = conn.execute(sa.text(f"SELECT originator_version, state FROM {table} "
                                              "WHERE topic LIKE '%TradeQueried'")).one()
        altered = bytes(state).replace(b'"trade_status":"WAIT_BUYER_PAY"', b'"trade_status":"TRADE_SUCCESS"')
        assert altered != bytes(state)  # the event's own field; the signed text inside it is left as it was
        conn.execute(sa.text(f"UPDATE {table} SET state = :state WHERE topic LIKE '%TradeQueried' "
                             "AND originator_version = :version"), {"state": altered, "version": version})
    [finding] = recorded_callbacks_that_fail(ledger.store, ledger.settings.apps)
    assert "altered trade-query event" in finding.problem


@pytest.mark.parametrize("fault", [{"wrong_key": True}, {"tampered": True}, {"unsigned": True}])
def test_an_answer_that_cannot_be_believed_is_kept_applies_nothing_and_alerts(
        ledger: Ledger, alipay_gateway: StandIn, fault: dict[str, bool]) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    alipay_gateway.sandbox.inject(times=1, **fault)
    assert step(ledger, order_id, 0) == "failed"
    failed = events(ledger, out_trade_no)[-1]
    assert type(failed).__name__ == "TradeQueryFailed" and "TRADE_SUCCESS" in failed.text
    assert "PaymentConfirmed" not in kinds(ledger, out_trade_no)
    assert any(out_trade_no in message for message in raised(ledger, "trade_query_failed"))
    assert row(ledger, out_trade_no)["last_query_result"].startswith("failed: ")


@pytest.mark.parametrize("fault", [{"delay": 2.0}, {"http_status": 502}])
def test_a_gateway_that_times_out_or_fails_is_asked_again_at_the_next_step(
        ledger: Ledger, alipay_gateway: StandIn, fault: dict[str, Any]) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    alipay_gateway.sandbox.inject(times=1, **fault)
    assert step(ledger, order_id, 0) == "failed"
    assert events(ledger, out_trade_no)[-1].reason == "unavailable"
    assert raised(ledger, "trade_query_failed") == []  # away is not misconfigured: the schedule goes on
    assert step(ledger, order_id, 1) == "answered"
    assert row(ledger, out_trade_no)["status"] == "PAID"


def test_a_trade_closed_unpaid_closes_the_order(ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00", "TRADE_CLOSED")
    step(ledger, order_id, 0)
    assert kinds(ledger, out_trade_no)[-1] == "TradeClosed" and row(ledger, out_trade_no)["status"] == "CLOSED"


def test_an_order_alipay_never_heard_of_waits_and_the_exhausted_schedule_alerts(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)  # no trade at the gateway: ACQ.TRADE_NOT_EXIST each time
    for number in range(3):
        assert step(ledger, order_id, number) == "answered"
    assert kinds(ledger, out_trade_no)[-1] == "QueriesExhausted"
    shown = row(ledger, out_trade_no)
    assert shown["queries_exhausted"] and shown["last_query_result"] == "ACQ.TRADE_NOT_EXIST"
    assert shown["status"] == "PENDING" and shown["next_query_at"] is None
    assert any(out_trade_no in message for message in raised(ledger, "queries_exhausted"))


def test_a_notification_disagreeing_with_the_answer_alerts(
        ledger: Ledger, alipay_gateway: StandIn, alipay: SandboxAlipay) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    step(ledger, order_id, 0)
    ledger.service.record_callback(RecordCallback(alipay.body(out_trade_no, trade_no="2026000000000000000000000001"),
                                                  "198.51.100.7"))
    assert any("disagree" in message and out_trade_no in message for message in raised(ledger, "anomaly"))
    assert Counter(kinds(ledger, out_trade_no))["PaymentConfirmed"] == 1


def test_the_schedule_is_in_the_order_row_and_the_sweep_asks_when_it_is_due(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, order_id = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00", "WAIT_BUYER_PAY")
    shown = row(ledger, out_trade_no)
    assert shown["registered_at"] is not None and shown["next_query_at"] > shown["registered_at"]
    sent: list[tuple[str, int]] = []
    assert ledger.actors is not None
    ledger.actors.query.send = lambda *args: sent.append(args)  # type: ignore[method-assign]
    sweeper = Sweeper(ledger, every=60, grace=timedelta(seconds=1))
    sweeper.sweep_once()
    assert sent == []  # not due yet
    ledger.clock = lambda: shown["next_query_at"] + timedelta(seconds=1)  # type: ignore[method-assign]
    sweeper.sweep_once()
    assert sent == [(order_id, 0)]


def test_asking_by_hand_records_who_asked_and_uses_no_step(ledger: Ledger, alipay_gateway: StandIn) -> None:
    out_trade_no, _ = registered(ledger)
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00", "WAIT_BUYER_PAY")
    assert ledger.queries is not None
    result = ledger.queries.query_now(APP_ID, out_trade_no, who="operator alice via API")
    assert result.trade_status == "WAIT_BUYER_PAY" and result.status == "PENDING"
    queried = events(ledger, out_trade_no)[-1]
    assert (queried.who, queried.source, queried.step) == ("operator alice via API", "manual", None)
    assert row(ledger, out_trade_no)["query_step"] == 0
    assert Order.create_id(APP_ID, out_trade_no) == queried.originator_id
