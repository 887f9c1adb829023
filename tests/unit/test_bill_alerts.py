"""The alerts the dispatcher derives from the daily bill job's failed attempts (jobs.dispatch): the day given up, and a
bill whose detail disagrees with its summary, raised for the day once whatever the retries."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from jobs.dispatch import Dispatcher
from ledger.domain.bill_schedule import CST
from ledger.domain.reconciliation import ReconciliationDay

APP_ID, DAY = "2021000000000001", "2019-09-16"
MORNING = datetime(2019, 9, 17, 10, 5, tzinfo=CST)


def failed(reason: str, *, final: bool, attempts: int = 1, when: datetime = MORNING) -> Any:
    """The BillFetchFailed of the day's attempt number `attempts`, recorded at `when`."""
    day = ReconciliationDay(app_id=APP_ID, day=DAY)
    for attempt in range(1, attempts + 1):
        day.take_fetch(when, 1.0)
        day.fetch_failed(attempt, reason=reason, error=f"attempt {attempt}: what was wrong",
                         next_at=None if final and attempt == attempts else when)
        when += timedelta(seconds=1)
    return dataclasses.replace(list(day.collect_events())[-1], timestamp=when)


def dispatched(*events: Any) -> list[tuple[str, str, str, datetime]]:
    raised: list[tuple[str, str, str, datetime]] = []

    def raise_alert(kind: str, key: str, message: str, at: datetime) -> bool:
        raised.append((kind, key, message, at))
        return True

    dispatcher = Dispatcher(deliver=None, wake_alerts=lambda: None, raise_alert=raise_alert)
    for event in events:
        dispatcher.apply(None, [(1, event)])  # type: ignore[arg-type]
    return raised


def test_a_day_given_up_alerts_naming_the_day_the_attempts_and_the_last_error() -> None:
    [(kind, key, message, _)] = dispatched(failed("bill_not_yet", final=True, attempts=7))
    assert (kind, key) == ("bill_unavailable", f"{APP_ID}/{DAY}")
    assert f"no trade bill of {DAY} after 7 attempts" in message
    assert "bill_not_yet: attempt 7: what was wrong" in message and f"--date {DAY} --app-id {APP_ID}" in message


def test_an_attempt_that_will_be_tried_again_raises_nothing() -> None:
    assert dispatched(failed("bill_not_yet", final=False), failed("unavailable", final=False)) == []


def test_a_bill_whose_detail_disagrees_with_its_summary_is_alerted_for_the_day_once_whatever_the_retries() -> None:
    first = failed("totals_differ", final=False)
    hours_later = failed("totals_differ", final=False, attempts=4, when=MORNING + timedelta(hours=5))
    raised = dispatched(first, hours_later)
    assert [(kind, key) for kind, key, _, _ in raised] == [("bill_inconsistent", f"{APP_ID}/{DAY}")] * 2
    # Raised with the start of the day: one window all day, so the second is a duplicate the alert service drops.
    assert {at for _, _, _, at in raised} == {datetime(2019, 9, 17, tzinfo=CST)}
    assert "disagrees with its own summary" in raised[0][2] and "tried again" in raised[0][2]
