"""Reconciliation as it runs at scale, on PostgreSQL and Redis: the daily job sent by the sweep over the Redis broker
and run by Dramatiq workers, the missing payment asked about under the Redis lock, the fees in the journal."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.runtime import InProcessWorker
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox_bill import DAY, bill_zip
from ledger.bootstrap import Ledger
from ledger.domain.bill import BILL_METHOD
from projections.queries.reconciliation import day_findings
from projections.tables import reconciliation_days
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn
from tests.support.reconciliation import at, book, clearing_movement, next_day, payment
from tests.support.refs import ref
from tests.support.waiting import wait_until


@pytest.fixture
def running(make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str, redis_prefix: str,
            alipay_gateway: StandIn) -> Ledger:
    """A ledger on the shared services at 10:05 China Standard Time, the day after the bill's."""
    now = at(next_day(DAY), 10, 5)
    return make_ledger(postgres_url, LEDGER_REDIS_URL=redis_url, LEDGER_REDIS_PREFIX=redis_prefix,
                       LEDGER_SWEEP_SECONDS="0.2", LEDGER_QUERY_SCHEDULE="off", overrides={"clock": lambda: now},
                       **alipay_gateway.env())


def matched_runs(ledger: Ledger) -> int:
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        return conn.scalar(sa.select(reconciliation_days.c.runs).where(reconciliation_days.c.day == DAY)) or 0


def test_the_daily_job_on_the_redis_broker_fetches_matches_and_books_what_alipay_confirms(
        running: Ledger, alipay: SandboxAlipay, alipay_gateway: StandIn) -> None:
    ledger = running
    notified, lost = ref("N"), ref("L")
    trades = [payment(notified, "88.00", at(DAY, 11), fee="0.53"), payment(lost, "10.00", at(DAY, 12), fee="0.06")]
    book(ledger, alipay, trades[:1])  # the second payment's notification never came
    paid_at = at(DAY, 12).astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")
    alipay_gateway.sandbox.add_trade(APP_ID, lost, "10.00", send_pay_date=paid_at)
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), bill_zip(trades))
    # A worker's whole process: projections, dispatcher, sweep, and Dramatiq workers on the Redis broker.
    parts: list[Any] = [ledger.follower(poll_seconds=0.1), *ledger.background(), InProcessWorker(ledger.broker)]
    for part in parts:
        part.start()
    try:
        # Asked once and matched, then matched again at once with the payment Alipay confirmed.
        assert wait_until(lambda: matched_runs(ledger) >= 2, seconds=60)
    finally:
        for part in reversed(parts):
            part.stop()
    assert ledger.engine is not None and ledger.runner is not None
    ledger.runner.catch_up()
    [finding] = day_findings(ledger.engine, DAY)
    assert (finding["kind"], finding["out_trade_no"], finding["state"], finding["settled_by"]) == (
        "missing_in_ledger", lost, "closed", "trade query")
    assert clearing_movement(ledger) == Decimal("98.00") - Decimal("0.53") - Decimal("0.06")
    asked = [r for r in alipay_gateway.sandbox.requests if r.get("method") == BILL_METHOD]
    assert len(asked) == 1
