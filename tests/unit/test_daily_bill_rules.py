"""The daily bill job's decisions with a fixed clock: which day's bill is due when (China Standard Time), the backoff
between attempts and the deadline (ledger.domain.bill_schedule), and the day's record of its attempts: one in flight
at a time, taken again after its lease, never after the day is matched or given up (ledger.domain.reconciliation)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from ledger.domain.bill_schedule import CST, BillSchedule
from ledger.domain.reconciliation import ReconciliationDay

SCHEDULE = BillSchedule(fetch_at=time(10, 0), deadline=time(18, 0))
DAY = date(2019, 9, 16)
LEASE = 110.0


def cst(hour: int, minute: int = 0, day: int = 17) -> datetime:
    return datetime(2019, 9, day, hour, minute, tzinfo=CST)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.mark.parametrize(("now", "due"), [
    (cst(0, 30), None), (cst(9, 59), None), (cst(10, 0), DAY), (cst(10, 5), DAY), (cst(23, 59), DAY),
    (cst(0, 5, day=18), None),  # a new day: its yesterday waits for its own fetch time
    (cst(10, 0, day=18), date(2019, 9, 17)),
])
def test_yesterdays_bill_is_due_from_the_fetch_time_in_china_standard_time(now: datetime, due: date | None) -> None:
    assert SCHEDULE.due_day(now) == due


def test_the_fetch_time_is_china_standard_time_whatever_the_clocks_zone() -> None:
    assert SCHEDULE.due_day(datetime(2019, 9, 17, 1, 59, tzinfo=UTC)) is None
    assert SCHEDULE.due_day(datetime(2019, 9, 17, 2, 0, tzinfo=UTC)) == DAY  # 10:00 CST


def test_the_deadline_is_the_deadline_time_on_the_day_after_the_bills_day() -> None:
    assert SCHEDULE.deadline_of(DAY) == cst(18, 0) == datetime(2019, 9, 17, 10, 0, tzinfo=UTC)


def test_the_wait_after_a_failed_attempt_starts_at_15_minutes_and_doubles_to_at_most_2_hours() -> None:
    now = cst(10, 5)
    waits = [SCHEDULE.retry_at(DAY, attempt, now) for attempt in range(1, 7)]
    assert waits == [now + minutes(m) for m in (15, 30, 60, 120, 120, 120)]


def test_a_retry_is_never_later_than_the_deadline_and_at_the_deadline_the_job_gives_up() -> None:
    assert SCHEDULE.retry_at(DAY, 5, cst(17, 50)) == cst(18, 0)
    assert SCHEDULE.retry_at(DAY, 1, cst(17, 59)) == cst(18, 0)
    assert SCHEDULE.retry_at(DAY, 8, cst(18, 0)) is None
    assert SCHEDULE.retry_at(DAY, 1, cst(23, 0)) is None  # a first attempt after the deadline: once, then given up


def record() -> ReconciliationDay:
    return ReconciliationDay(app_id="2021000000000001", day=DAY.isoformat())


def test_an_attempt_in_flight_is_not_taken_again_until_its_lease_has_passed() -> None:
    day, now = record(), cst(10, 5)
    assert day.take_fetch(now, LEASE) == 1
    assert day.take_fetch(now + timedelta(seconds=LEASE - 1), LEASE) is None
    assert day.take_fetch(now + timedelta(seconds=LEASE), LEASE) == 2  # its worker died: taken again


def test_a_failed_attempt_is_tried_again_at_its_retry_time_and_not_before() -> None:
    day, now = record(), cst(10, 5)
    attempt = day.take_fetch(now, LEASE)
    assert attempt == 1 and day.fetch_failed(attempt, reason="bill_not_yet", error="no bill", next_at=now + minutes(15))
    assert not day.fetch_due(now + minutes(14), LEASE)
    assert day.take_fetch(now + minutes(15), LEASE) == 2


def test_a_day_given_up_or_matched_is_never_due_again() -> None:
    given_up, now = record(), cst(18, 0)
    attempt = given_up.take_fetch(now, LEASE)
    assert attempt is not None and given_up.fetch_failed(attempt, reason="bill_not_yet", error="", next_at=None)
    assert not given_up.fetch_due(now + timedelta(hours=3), LEASE)
    matched = record()
    matched.take_fetch(now, LEASE)
    matched.record_run(bill_id="b", sha256="s", who="daily job", at=now, bill={}, ledger={}, counts={}, opened=[],
                       closed=[], kinds={}, next_bill=False)
    assert matched.fetch_taken is None and not matched.fetch_due(now + timedelta(hours=3), LEASE)


def test_the_report_of_an_attempt_taken_again_after_its_lease_is_stale_and_records_nothing() -> None:
    day, now = record(), cst(10, 5)
    first = day.take_fetch(now, LEASE)
    second = day.take_fetch(now + timedelta(seconds=LEASE), LEASE)
    assert (first, second) == (1, 2)
    assert not day.fetch_failed(1, reason="bill_not_yet", error="late", next_at=None)
    assert not day.fetch_given_up and day.fetch_taken is not None  # the second attempt is still in flight
    assert day.fetch_failed(2, reason="bill_not_yet", error="", next_at=now + minutes(15))
