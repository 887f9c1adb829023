"""The daily bill job against the stand-in gateway over HTTP, on SQLite and PostgreSQL, with the clock set: nothing
before the fetch time; a day Alipay has no bill for yet tried again with a backoff, then imported and matched once
it has one, and left alone after; given up and alerted past the deadline; one fetch however many workers; a worker's
attempt taken again after its lease; the alerts of a bill that disagrees with itself and of findings left open."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.runtime import QUERY_QUEUE, Sweeper
from ledger.alipay.sandbox_bill import DAY, bill_zip
from ledger.bootstrap import Ledger
from ledger.domain.bill import BILL_METHOD
from ledger.domain.reconciliation import ReconciliationDay
from projections.tables import alerts, reconciliation_days
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn
from tests.support.reconciliation import at, book, import_and_match, next_day, payment

TODAY = next_day(DAY)  # the job fetches DAY's bill on the day after


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock(at(TODAY, 9, 0))


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger], database_url: str, alipay_gateway: StandIn, clock: Clock) -> Ledger:
    return make_ledger(database_url, LEDGER_QUERY_SCHEDULE="off", overrides={"clock": clock}, **alipay_gateway.env())


@pytest.fixture
def sweep(ledger: Ledger) -> Callable[[], list[tuple[str, str]]]:
    """One sweep; the messages it sends are run at once by the actor, as a worker would. Returns them."""
    sweeper = Sweeper(ledger, every=60, grace=timedelta(seconds=1))
    assert ledger.actors is not None
    actor = ledger.actors.fetch_bill

    def run() -> list[tuple[str, str]]:
        sent: list[tuple[str, str]] = []
        actor.send = lambda *args: sent.append(args)  # type: ignore[method-assign,assignment,return-value]
        sweeper.sweep_once()
        for args in sent:
            actor.fn(*args)
        return sent

    return run


def bill_requests(stand_in: StandIn) -> list[dict[str, str]]:
    return [r for r in stand_in.sandbox.requests if r.get("method") == BILL_METHOD]


def day_row(ledger: Ledger) -> dict[str, Any]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    with ledger.engine.connect() as conn:
        return dict(conn.execute(sa.select(reconciliation_days).where(
            reconciliation_days.c.app_id == APP_ID, reconciliation_days.c.day == DAY)).mappings().one())


def raised(ledger: Ledger, kind: str) -> list[dict[str, Any]]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    with ledger.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(alerts).where(alerts.c.kind == kind)).mappings()]


def the_days_trades(ledger: Ledger, alipay: SandboxAlipay) -> bytes:
    """The day's two payments, booked in the ledger as notified; the bill Alipay gives of them."""
    trades = [payment("D-1", "88.00", at(DAY, 11), fee="-0.53"), payment("D-2", "10.00", at(DAY, 12), fee="-0.06")]
    book(ledger, alipay, trades)
    return bill_zip(trades)


def test_before_the_fetch_time_the_job_asks_nothing(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn) -> None:
    clock.now = at(TODAY, 9, 59)
    assert sweep() == [] and bill_requests(alipay_gateway) == []


def test_with_no_bill_yet_a_failure_is_recorded_and_nothing_is_asked_until_15_minutes_later(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn) -> None:
    clock.now = at(TODAY, 10, 5)
    assert sweep() == [(APP_ID, DAY.isoformat())]
    assert len(bill_requests(alipay_gateway)) == 1
    row = day_row(ledger)
    assert (row["fetch_state"], row["fetch_attempts"], row["runs"]) == ("waiting", 1, 0)
    assert row["next_fetch_at"] == at(TODAY, 10, 20) and row["fetch_error"].startswith("bill_not_yet: ")
    clock.now = at(TODAY, 10, 19, 59)
    assert sweep() == [] and len(bill_requests(alipay_gateway)) == 1
    clock.now = at(TODAY, 10, 20)
    assert sweep() == [(APP_ID, DAY.isoformat())] and len(bill_requests(alipay_gateway)) == 2
    assert day_row(ledger)["next_fetch_at"] == at(TODAY, 10, 50)  # the wait doubles


def test_the_bill_alipay_then_publishes_is_imported_and_matched_once_and_the_day_is_left_alone(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn,
        alipay: SandboxAlipay) -> None:
    data = the_days_trades(ledger, alipay)
    clock.now = at(TODAY, 10, 5)
    sweep()
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), data)
    clock.now = at(TODAY, 10, 20)
    assert sweep() == [(APP_ID, DAY.isoformat())]
    row = day_row(ledger)
    assert (row["runs"], row["matched"], row["fetch_state"], row["last_run_by"]) == (1, 2, None, "daily job")
    for hour in (10, 12, 17, 18, 23):
        clock.now = at(TODAY, hour, 30)
        assert sweep() == []
    assert len(bill_requests(alipay_gateway)) == 2 and day_row(ledger)["runs"] == 1


def test_a_bill_imported_by_hand_before_the_fetch_time_is_matched_without_asking_the_gateway(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn,
        alipay: SandboxAlipay) -> None:
    assert ledger.bills is not None
    ledger.bills.import_bill(the_days_trades(ledger, alipay), source="file bill.zip", who="finance")
    clock.now = at(TODAY, 10, 5)
    assert sweep() == [(APP_ID, DAY.isoformat())]
    assert day_row(ledger)["runs"] == 1 and bill_requests(alipay_gateway) == []


def test_past_the_deadline_the_job_gives_up_and_alerts_that_the_bill_is_unavailable(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn) -> None:
    clock.now = at(TODAY, 10, 5)
    sweep()
    assert raised(ledger, "bill_unavailable") == []
    clock.now = at(TODAY, 18, 0)
    assert sweep() == [(APP_ID, DAY.isoformat())]
    row = day_row(ledger)
    assert (row["fetch_state"], row["fetch_attempts"], row["next_fetch_at"]) == ("given_up", 2, None)
    [alert] = raised(ledger, "bill_unavailable")
    assert alert["key"] == f"{APP_ID}/{DAY}"
    assert f"no trade bill of {DAY} after 2 attempts" in alert["message"] and "bill_not_yet" in alert["message"]
    clock.now = at(TODAY, 20, 0)
    assert sweep() == [] and len(bill_requests(alipay_gateway)) == 2


def test_an_answer_not_signed_by_alipay_gives_up_at_once_and_alerts(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), bill_zip([]))
    alipay_gateway.sandbox.inject(times=1, wrong_key=True)
    clock.now = at(TODAY, 10, 5)
    sweep()
    assert day_row(ledger)["fetch_state"] == "given_up"
    [alert] = raised(ledger, "bill_unavailable")
    assert "bad_signature" in alert["message"]


def test_two_workers_at_once_fetch_the_bill_once(
        ledger: Ledger, clock: Clock, alipay_gateway: StandIn, alipay: SandboxAlipay) -> None:
    assert ledger.daily_bill is not None
    job = ledger.daily_bill
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), the_days_trades(ledger, alipay))
    alipay_gateway.sandbox.inject(times=1, delay=0.3)  # the first to take it is slow: the others must not fetch
    clock.now = at(TODAY, 10, 5)
    results: list[str] = []
    workers = [threading.Thread(target=lambda: results.append(job.run(APP_ID, DAY))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == ["matched", "not_due", "not_due"]
    assert len(bill_requests(alipay_gateway)) == 1 and day_row(ledger)["runs"] == 1


def test_an_attempt_whose_worker_died_is_taken_again_after_its_lease(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn,
        alipay: SandboxAlipay) -> None:
    assert ledger.daily_bill is not None
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), the_days_trades(ledger, alipay))
    clock.now = at(TODAY, 10, 5)
    died = ReconciliationDay(app_id=APP_ID, day=DAY.isoformat())  # taken by a worker killed before it reported
    assert died.take_fetch(clock.now, ledger.daily_bill.lease_seconds) == 1
    ledger.store.save(died)
    clock.now += timedelta(seconds=ledger.daily_bill.lease_seconds - 1)
    assert sweep() == [] and bill_requests(alipay_gateway) == []
    clock.now += timedelta(seconds=1)
    assert sweep() == [(APP_ID, DAY.isoformat())]
    row = day_row(ledger)
    assert (row["runs"], row["fetch_attempts"]) == (1, 2) and len(bill_requests(alipay_gateway)) == 1


def test_a_bill_whose_summary_disagrees_with_its_detail_alerts_once_and_is_tried_again(
        ledger: Ledger, sweep: Callable[[], list[Any]], clock: Clock, alipay_gateway: StandIn,
        alipay: SandboxAlipay) -> None:
    the_days_trades(ledger, alipay)
    skewed = bill_zip([payment("D-1", "88.00", at(DAY, 11))], summary_skew={"商家实收（元）": Decimal("0.01")})
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), skewed)
    clock.now = at(TODAY, 10, 5)
    sweep()
    clock.now = at(TODAY, 10, 20)
    sweep()
    row = day_row(ledger)
    assert (row["fetch_state"], row["fetch_attempts"]) == ("waiting", 2)
    assert row["fetch_error"].startswith("totals_differ: ") and row["next_fetch_at"] == at(TODAY, 10, 50)
    [alert] = raised(ledger, "bill_inconsistent")
    assert alert["key"] == f"{APP_ID}/{DAY}"
    assert f"trade bill of {DAY} disagrees with its own summary" in alert["message"]
    assert raised(ledger, "bill_unavailable") == []


def test_findings_left_open_past_the_grace_alert_once(
        make_ledger: Callable[..., Ledger], database_url: str, alipay_gateway: StandIn, clock: Clock) -> None:
    ledger = make_ledger(database_url, LEDGER_QUERY_SCHEDULE="off", LEDGER_BILL_FETCH_AT="off",
                         overrides={"clock": clock}, **alipay_gateway.env())
    assert ledger.daily_bill is None  # off: only the findings are watched here
    sweeper = Sweeper(ledger, every=60, grace=timedelta(seconds=1))
    clock.now = at(TODAY, 10, 5)
    import_and_match(ledger, [payment("NEVER-HEARD", "66.00", at(DAY, 11))])  # a payment the ledger never booked
    # Each sweep more than FINDINGS_CHECK (10 min) after the one before, so each one checks.
    for later in (timedelta(hours=23, minutes=50), timedelta(hours=24, minutes=1), timedelta(hours=24, minutes=20)):
        clock.now = at(TODAY, 10, 5) + later
        sweeper.sweep_once()
        if later < timedelta(hours=24):
            assert raised(ledger, "findings_open") == []
    [alert] = raised(ledger, "findings_open")
    assert alert["key"] == f"{APP_ID}/{DAY}" and "1 reconciliation finding is" in alert["message"]
    assert f"/api/reconciliation/{DAY}?app_id={APP_ID}&state=open" in alert["message"]


def test_the_bill_fetches_go_to_the_gateways_queue_and_a_failing_job_does_not_stop_the_sweep(
        ledger: Ledger, clock: Clock) -> None:
    assert ledger.actors is not None and ledger.daily_bill is not None
    assert ledger.actors.fetch_bill.queue_name == QUERY_QUEUE
    checked: list[datetime] = []

    def broken(now: datetime) -> list[Any]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("the database went away"))

    ledger.daily_bill.due = broken  # type: ignore[method-assign]
    sweeper = Sweeper(ledger, every=60, grace=timedelta(seconds=1))
    sweeper._check_certificates = lambda now: checked.append(now)  # type: ignore[method-assign]
    clock.now = at(TODAY, 10, 5)
    sweeper.sweep_once()
    assert checked == [clock.now]  # the checks after it still ran
