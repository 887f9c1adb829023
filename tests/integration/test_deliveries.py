"""The failure stream: deliveries to a real local HTTP server standing in for the merchant's system,
retries with growing delays, the manual queue and alerts to a fake DingTalk robot that checks signatures.
On the embedded default (SQLite, in-memory broker) and on PostgreSQL with the Redis broker."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.runtime import QUEUE, InProcessWorker
from ledger.bootstrap import Ledger
from ledger.domain.order import Order
from ledger.service.application import RecordCallback
from projections.tables import alerts, deliveries
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.deliveries import job_env, key_of
from tests.support.ledgers import kinds
from tests.support.merchant import FakeMerchant
from tests.support.robots import FakeDingTalk
from tests.support.waiting import wait_until


class FailureStreamContract:
    @pytest.fixture
    def env(self) -> dict[str, str]:
        raise NotImplementedError

    @pytest.fixture
    def running(self, env: dict[str, str], make_ledger: Callable[..., Ledger], merchant: FakeMerchant,
                robot: FakeDingTalk) -> Iterator[Callable[..., Ledger]]:
        """Start a ledger with everything that runs beside serving: projections, dispatcher, sweep, workers."""
        started: list[Any] = []

        def start(**extra: str) -> Ledger:
            ledger = make_ledger(env["LEDGER_DATABASE_URL"], **{**env, **job_env(merchant, robot), **extra})
            parts = [ledger.follower(poll_seconds=0.1), *ledger.background()]
            if ledger.settings.redis_url is not None:
                parts.append(InProcessWorker(ledger.broker))
            for part in parts:
                part.start()
            started.extend(reversed(parts))
            return ledger

        yield start
        for part in started:
            part.stop()

    def pay(self, ledger: Ledger, alipay: SandboxAlipay, order: str) -> None:
        ledger.service.record_callback(RecordCallback(alipay.body(order), "203.0.113.5"))

    def test_downstream_failing_twice_then_succeeding_is_delivered_on_the_third_attempt_with_growing_delays(
            self, running: Callable[..., Ledger], merchant: FakeMerchant, alipay: SandboxAlipay) -> None:
        ledger = running()
        merchant.fail_next(2)
        self.pay(ledger, alipay, "D-TWICE")
        key = key_of("D-TWICE")
        assert merchant.wait_for(lambda: key in merchant.keys_succeeded(), timeout=20)
        attempts = merchant.attempts_for(key)
        assert [a.status for a in attempts] == [503, 503, 200] and all(a.signature_ok for a in attempts)
        first_gap, second_gap = (attempts[1].monotonic - attempts[0].monotonic,
                                 attempts[2].monotonic - attempts[1].monotonic)
        assert 0.3 <= first_gap < second_gap
        assert wait_until(lambda: Counter(kinds(ledger, "D-TWICE"))["DeliverySucceeded"] == 1)
        assert Counter(kinds(ledger, "D-TWICE"))["DeliveryFailed"] == 2
        assert attempts[-1].body["change"] == "payment" and attempts[-1].body["total_amount"] == "88.00"

    def test_downstream_always_failing_gets_one_plus_three_attempts_then_the_manual_queue_and_one_alert(
            self, running: Callable[..., Ledger], merchant: FakeMerchant, robot: FakeDingTalk,
            alipay: SandboxAlipay) -> None:
        ledger = running()
        merchant.always_fail(500)
        self.pay(ledger, alipay, "D-NEVER")
        key = key_of("D-NEVER")
        assert wait_until(lambda: "DeliveryAbandoned" in kinds(ledger, "D-NEVER"))
        assert wait_until(lambda: any("D-NEVER" in text for text in robot.texts))
        # No fifth attempt comes: what a late retry message or the sweep would do finds nothing due, and the
        # messages already sent, once processed, made none.
        assert ledger.delivery.deliver(str(Order.create_id(APP_ID, "D-NEVER")), "payment") == "not_due"
        ledger.broker.join(QUEUE, timeout=20_000)
        assert len(merchant.attempts_for(key)) == 4
        with ledger.engine.connect() as conn:
            states = conn.execute(sa.select(deliveries.c.state).where(deliveries.c.out_trade_no == "D-NEVER")).all()
            raised = conn.execute(sa.select(alerts.c.kind)).scalars().all()
        assert [s for (s,) in states] == ["abandoned"]
        assert raised == ["delivery_abandoned"]
        assert sum("D-NEVER" in text for text in robot.texts) == 1

    def test_a_duplicated_message_makes_no_second_delivery(self, running: Callable[..., Ledger],
                                                           merchant: FakeMerchant, alipay: SandboxAlipay) -> None:
        ledger = running()
        self.pay(ledger, alipay, "D-DUP")
        key = key_of("D-DUP")
        assert merchant.wait_for(lambda: key in merchant.keys_succeeded(), timeout=20)
        order_id = str(Order.create_id(APP_ID, "D-DUP"))
        for _ in range(3):
            ledger.actors.deliver.send(order_id, "payment")
        assert ledger.delivery.deliver(order_id, "payment") == "not_due"
        # Both brokers' join waits for the messages being processed too (in memory: until their task is done;
        # on Redis: until they are acknowledged), so the three have been handled when it returns.
        ledger.broker.join(QUEUE, timeout=20_000)
        assert len(merchant.attempts_for(key)) == 1

    def test_manual_retry_after_abandon_delivers_and_resolving_needs_a_note(
            self, running: Callable[..., Ledger], merchant: FakeMerchant, alipay: SandboxAlipay) -> None:
        ledger = running(LEDGER_RETRY_MAX="0")
        merchant.always_fail(503)
        self.pay(ledger, alipay, "D-MANUAL")
        assert wait_until(lambda: "DeliveryAbandoned" in kinds(ledger, "D-MANUAL"))
        merchant.recover()
        ledger.service.manual_retry(APP_ID, "D-MANUAL", who="operator", note="their system is back")
        key = key_of("D-MANUAL")
        assert merchant.wait_for(lambda: key in merchant.keys_succeeded(), timeout=20)
        assert Counter(kinds(ledger, "D-MANUAL"))["ManualRetryRequested"] == 1

    def test_a_hundred_failures_in_a_minute_send_at_most_twenty_robot_messages(
            self, running: Callable[..., Ledger], merchant: FakeMerchant, robot: FakeDingTalk,
            alipay: SandboxAlipay) -> None:
        ledger = running(LEDGER_RETRY_MAX="0")
        merchant.always_fail(503)
        for n in range(100):
            self.pay(ledger, alipay, f"D-BURST-{n}")

        def all_sent() -> bool:
            with ledger.engine.connect() as conn:
                rows = conn.execute(sa.select(alerts.c.sent_to)).scalars().all()
            return len(rows) == 100 and all(rows)

        assert wait_until(all_sent, seconds=60)
        assert 1 <= len(robot.messages) <= 20 and robot.throttled == 0
        # Grouped, each alert in exactly one message: the messages' own counts add up to the hundred.
        counted = [int(re.search(r"Ledger alerts: (\d+)", text).group(1)) for text in robot.texts]  # type: ignore[union-attr]
        assert sum(counted) == 100


    def test_alerts_trickling_in_one_by_one_still_reach_a_robot_at_most_twenty_times_a_minute(
            self, env: dict[str, str], make_ledger: Callable[..., Ledger], merchant: FakeMerchant,
            robot: FakeDingTalk) -> None:
        ledger = make_ledger(env["LEDGER_DATABASE_URL"], **{**env, **job_env(merchant, robot)})
        for n in range(100):  # the worst case: a send is attempted after every single alert
            ledger.alerting.raise_alert("delivery_abandoned", f"order-{n}", f"order {n} abandoned")
            ledger.runner.catch_up()
            ledger.alerting.send_pending()
        assert wait_until(lambda: ledger.alerting.send_pending()[robot_name(ledger)] == 0, seconds=30)
        assert 1 <= len(robot.messages) <= 20 and robot.throttled == 0
        counted = [int(re.search(r"Ledger alerts: (\d+)", text).group(1)) for text in robot.texts]  # type: ignore[union-attr]
        assert sum(counted) == 100


def robot_name(ledger: Ledger) -> str:
    return str(ledger.alerting.robots[0].name)


class TestFailureStreamEmbedded(FailureStreamContract):
    @pytest.fixture
    def env(self, sqlite_url: str) -> dict[str, str]:
        return {"LEDGER_DATABASE_URL": sqlite_url}


class TestFailureStreamOnPostgresAndRedis(FailureStreamContract):
    @pytest.fixture
    def env(self, postgres_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
        return {"LEDGER_DATABASE_URL": postgres_url, "LEDGER_REDIS_URL": redis_url, "LEDGER_REDIS_PREFIX": redis_prefix}
