"""Reconciliation's records: a stream per app and China-Standard-Time day (its bill fetches, its matching runs,
the fees posted from its bill), and a stream per finding with its lifecycle.

A finding's id is derived from its app, day, kind and key: a rerun that finds it again finds its stream there and
records nothing new. It is open (or carried over, waiting for the next day's bill), then resolved by someone with
who and why, or closed by later evidence (a rerun no longer finds it, a query confirmed the payment, the carried
payment appeared on the next bill).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import InvalidRequest, NothingToDo

NAMESPACE = UUID("0b7e4c2d-51a8-5e93-8f16-c3d2a9e47b05")
OPEN, CARRIED, RESOLVED, CLOSED = "open", "carried", "resolved", "closed"
SETTLED = (RESOLVED, CLOSED)
NOTE_MAX = 1000


class ReconciliationDay(Aggregate):
    @staticmethod
    def create_id(app_id: str, day: date | str) -> UUID:
        return uuid5(NAMESPACE, f"day/{app_id}/{day}")

    @event("DayOpened")
    def __init__(self, app_id: str, day: str) -> None:
        self.app_id, self.day = app_id, day
        self.runs = 0
        self.findings: dict[str, str] = {}  # finding id -> its kind, of every finding any run made
        self.posted: set[str] = set()  # bill row keys whose fee, share and discount are in the journal
        self.fetch_attempts = 0
        self.fetch_taken: datetime | None = None
        self.next_fetch_at: datetime | None = None
        self.fetch_given_up = False

    # -- matching -------------------------------------------------------------------------------

    def record_run(self, *, bill_id: str, sha256: str, who: str, at: datetime, bill: dict[str, str],
                   ledger: dict[str, str], counts: dict[str, int], opened: list[str], closed: list[str],
                   kinds: dict[str, str], next_bill: bool) -> int:
        """Record one matching run: which bill, both sides' totals (amounts as text), the count of each kind,
        the findings it opened and closed. Returns the run's number."""
        self._matched(run=self.runs + 1, bill_id=bill_id, sha256=sha256, who=who[:200], at=at, bill=bill,
                      ledger=ledger, counts=counts, opened=opened, closed=closed, kinds=kinds, next_bill=next_bill)
        return self.runs

    def post_fees(self, bill_id: str, rows: list[list[str]]) -> None:
        """Rows of the bill the ledger agrees with, whose fee, share and discount go to the journal:
        [key, kind, out_trade_no, trade_no, 订单金额, 商家实收, 服务费, 分润]; each key once, whatever the reruns."""
        new = [row for row in rows if row[0] not in self.posted]
        if new:
            self._fees_posted(bill_id=bill_id, day=self.day, app_id=self.app_id, rows=new)

    # -- fetching the bill (the daily job) --------------------------------------------------------

    def fetch_due(self, now: datetime, lease_seconds: float) -> bool:
        """Whether an attempt may be taken now: not matched, not given up, its retry time come, and none in flight
        (a taken attempt is left to its worker for `lease_seconds`, then taken again: the worker may have died)."""
        if self.runs or self.fetch_given_up or (self.next_fetch_at is not None and now < self.next_fetch_at):
            return False
        return self.fetch_taken is None or (now - self.fetch_taken).total_seconds() >= lease_seconds

    def take_fetch(self, now: datetime, lease_seconds: float) -> int | None:
        """The attempt to make now, or None when none is due (see fetch_due); the version check fences two
        workers taking one at once."""
        if not self.fetch_due(now, lease_seconds):
            return None
        self._fetch_taken(attempt=self.fetch_attempts + 1, at=now)
        return self.fetch_attempts

    def fetch_failed(self, attempt: int, *, reason: str, error: str, next_at: datetime | None) -> bool:
        """An attempt that brought no bill in: tried again at `next_at`, or (None) given up and alerted. False,
        recording nothing, for an attempt no longer in flight (the day matched meanwhile, or taken again after
        its lease): its report is stale."""
        if self.runs or self.fetch_taken is None or attempt != self.fetch_attempts:
            return False
        self._fetch_failed(app_id=self.app_id, day=self.day, attempt=attempt, reason=reason, error=error[:500],
                           next_at=next_at, final=next_at is None)
        return True

    # -- events ---------------------------------------------------------------------------------

    @event("DayMatched")
    def _matched(self, run: int, bill_id: str, sha256: str, who: str, at: datetime, bill: dict[str, str],
                 ledger: dict[str, str], counts: dict[str, int], opened: list[str], closed: list[str],
                 kinds: dict[str, str], next_bill: bool) -> None:
        self.runs = run
        self.findings.update(kinds)
        self.fetch_taken = None

    @event("FeesPosted")
    def _fees_posted(self, bill_id: str, day: str, app_id: str, rows: list[list[str]]) -> None:
        self.posted.update(row[0] for row in rows)

    @event("BillFetchTaken")
    def _fetch_taken(self, attempt: int, at: datetime) -> None:
        self.fetch_attempts, self.fetch_taken = attempt, at

    @event("BillFetchFailed")
    def _fetch_failed(self, app_id: str, day: str, attempt: int, reason: str, error: str, next_at: datetime | None,
                      final: bool) -> None:
        """`app_id`, `day`: for the alerts derived from it (jobs.dispatch), which see the event alone."""
        self.fetch_taken, self.next_fetch_at, self.fetch_given_up = None, next_at, final


class Finding(Aggregate):
    @staticmethod
    def create_id(app_id: str, day: date | str, kind: str, key: str) -> UUID:
        return uuid5(NAMESPACE, f"finding/{app_id}/{day}/{kind}/{key}")

    @event("FindingOpened")
    def __init__(self, app_id: str, day: str, kind: str, key: str, out_trade_no: str, request_no: str,
                 detail: str, bill: dict[str, str] | None, ledger: dict[str, str] | None, carried: bool,
                 run: int, at: datetime) -> None:
        """`bill`, `ledger`: each side's values (as text), None for the side that has nothing."""
        self.app_id, self.day, self.kind, self.key = app_id, day, kind, key
        self.out_trade_no, self.request_no, self.detail = out_trade_no, request_no, detail
        self.bill, self.ledger = bill, ledger
        self.state = CARRIED if carried else OPEN

    @property
    def settled(self) -> bool:
        return self.state in SETTLED

    def confirm(self, detail: str, run: int) -> None:
        """A carried-over finding the next day's bill does not settle either: it counts now."""
        if self.state == CARRIED:
            self._confirmed(detail=detail, run=run)

    def resolve(self, who: str, note: str) -> None:
        if not note.strip():
            raise InvalidRequest("resolving a finding needs a note saying why")
        if self.settled:
            raise NothingToDo(f"finding {self.id} is {self.state} already")
        self._resolved(who=who[:200], note=note[:NOTE_MAX])

    def close(self, reason: str, by: str) -> bool:
        """Closed by later evidence (`by`: what settled it); False when it was settled already."""
        if self.settled:
            return False
        self._closed(reason=reason[:500], by=by[:200])
        return True

    def reopen(self, detail: str, run: int) -> None:
        """Found again after later evidence had closed it."""
        if self.state == CLOSED:
            self._reopened(detail=detail, run=run)

    @event("FindingConfirmed")
    def _confirmed(self, detail: str, run: int) -> None:
        self.state, self.detail = OPEN, detail

    @event("FindingResolved")
    def _resolved(self, who: str, note: str) -> None:
        self.state = RESOLVED

    @event("FindingClosed")
    def _closed(self, reason: str, by: str) -> None:
        self.state = CLOSED

    @event("FindingReopened")
    def _reopened(self, detail: str, run: int) -> None:
        self.state, self.detail = OPEN, detail


def side_values(obj: Any) -> dict[str, str] | None:
    """A side of a finding as text (None for a side that has nothing), as the events record it."""
    if obj is None:
        return None
    return {f.name: "" if (value := getattr(obj, f.name)) is None else str(value) for f in fields(obj)}
