"""The daily bill job: for each app that can ask the gateway, the day before's trade bill (China Standard Time) is
fetched once Alipay has published it, imported and matched; while there is none it is tried again with a backoff
until the day's deadline, then given up, which alerts (jobs.dispatch).

Any number of workers run it. An attempt is taken first (`BillFetchTaken`, fenced by the day stream's version check,
so two workers never fetch at once), made outside any commit, and a failure recorded with when to try again. A
worker that dies after taking one leaves it taken: after the lease another takes it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.domain.bill_schedule import CST, BillSchedule
from ledger.domain.errors import GatewayError, LedgerError, StorageUnavailable
from ledger.domain.reconciliation import ReconciliationDay
from ledger.service.bills import BillService
from ledger.service.reconciliation import BillMissing, ReconcileService
from ledger.service.saving import load

log = logging.getLogger(__name__)
WHO = "daily job"
MATCHED, NOT_DUE = "matched", "not_due"
MAX_CONFLICTS = 3


class DailyBillJob:
    def __init__(self, store: LedgerStore, bills: BillService, reconcile: ReconcileService, app_ids: Sequence[str], *,
                 schedule: BillSchedule, lease_seconds: float, clock: Callable[[], datetime]) -> None:
        """`app_ids`: the apps that can ask the gateway (their private key is configured); `lease_seconds`: how
        long a taken attempt is left to its worker (longer than a fetch, an import and a match take)."""
        self.store, self.bills, self.reconcile = store, bills, reconcile
        self.app_ids, self.schedule, self.lease_seconds, self.clock = tuple(app_ids), schedule, lease_seconds, clock

    def due(self, now: datetime) -> list[tuple[str, date]]:
        """The apps and day whose bill is due at `now` (the sweep sends a message for each; the attempt decides
        again): from the fetch time on, not matched yet, not given up, its retry time come, none in flight."""
        day = self.schedule.due_day(now)
        if day is None:
            return []
        return [(app_id, day) for app_id in self.app_ids
                if (record := self._day(app_id, day)) is None or record.fetch_due(now, self.lease_seconds)]

    def run(self, app_id: str, day: date) -> str:
        """One attempt at the app's bill of `day` (the `fetch_bill` actor): taken, then matched, the bill fetched
        first unless one of the day is imported already. Returns `matched`, `not_due` (nothing to do, or another
        worker has it), or the reason the attempt failed, recorded with when to try again (none: given up)."""
        now = self.clock()
        attempt = self._take(app_id, day, now)
        if attempt is None:
            return NOT_DUE
        try:
            try:
                self.reconcile.match_day(day, who=WHO, app_id=app_id)  # a bill imported by hand already: matched
            except BillMissing:
                self.bills.fetch(day, who=WHO, app_id=app_id)
                self.reconcile.match_day(day, who=WHO, app_id=app_id)
        except LedgerError as exc:
            return self._failed(app_id, day, attempt, exc)
        log.info("the bill of app %s for %s is imported and matched (attempt %s)", app_id, day, attempt)
        return MATCHED

    def _take(self, app_id: str, day: date, now: datetime) -> int | None:
        record = self._day(app_id, day) or ReconciliationDay(app_id=app_id, day=day.isoformat())
        attempt = record.take_fetch(now, self.lease_seconds)
        if attempt is None:
            return None
        try:
            self.store.save(record)
        except IntegrityError:  # another worker took an attempt at the same moment: it is theirs
            return None
        except PersistenceError as exc:
            raise StorageUnavailable(f"event store unavailable: {exc}") from exc
        return attempt

    def _failed(self, app_id: str, day: date, attempt: int, exc: LedgerError) -> str:
        reason = "bill_missing" if isinstance(exc, BillMissing) else exc.reason
        # A configuration error (an answer not believed, the request refused) will not mend by itself: alerted now,
        # not at the deadline. Anything else (no bill yet, a gateway away, a bill refused) may, and is tried again.
        final = isinstance(exc, GatewayError) and not exc.retryable
        next_at = None if final else self.schedule.retry_at(day, attempt, self.clock())
        log.warning("attempt %s at the bill of app %s for %s: %s (%s); %s", attempt, app_id, day, reason, exc,
                    f"tried again at {next_at.astimezone(CST):%Y-%m-%d %H:%M} CST" if next_at else "given up")
        for _ in range(MAX_CONFLICTS):
            record = self._day(app_id, day)
            if record is None or not record.fetch_failed(attempt, reason=reason, error=str(exc), next_at=next_at):
                return reason  # matched meanwhile, or taken again after the lease: that attempt reports
            try:
                self.store.save(record)
                return reason
            except IntegrityError:
                continue  # the day's stream moved (a match by hand): read it again
            except PersistenceError as err:
                raise StorageUnavailable(f"event store unavailable: {err}") from err
        raise StorageUnavailable(f"the failed attempt at the bill of {day} could not be recorded; the lease retries")

    def _day(self, app_id: str, day: date) -> ReconciliationDay | None:
        return load(self.store, ReconciliationDay.create_id(app_id, day), ReconciliationDay)
