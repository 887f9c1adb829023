"""Matching a day's bill with the ledger (对账): one run reads the day's bill (kept as evidence), the ledger's side
from the read model once it has caught up with the log, matches them three ways (ledger.domain.matching), and
records in one commit the run, its new and settled findings, and the fees of the rows that matched.

A run is idempotent: the same evidence gives the same findings (their streams are named by app, day, kind and
key), fees are posted once per bill row, and what a rerun no longer finds is closed. A payment the ledger never
heard of is then asked about through the gateway at once; a confirmed answer books it and closes the finding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.alipay.bill import PAYMENT, BillRow, read_bill
from ledger.config import AlipayApp
from ledger.domain.bill import Bill
from ledger.domain.errors import InvalidRequest, NothingToDo, StorageUnavailable
from ledger.domain.matching import CARRIED_KINDS, MISSING_IN_LEDGER, BillEntry, Finding, Matching, match
from ledger.domain.reconciliation import CARRIED, ReconciliationDay, side_values
from ledger.domain.reconciliation import Finding as FindingStream
from ledger.service.missing_payments import CONFIRMED, confirm_by_query
from ledger.service.saving import load
from projections.queries.reconciliation import LedgerSide, bill_of, ledger_side

if TYPE_CHECKING:
    from ledger.service.bills import BillService
    from ledger.service.trade_query import QueryService

log = logging.getLogger(__name__)
ZERO = Decimal("0.00")
FEE_CHUNK = 1000  # bill rows per FeesPosted event
QUERIES_PER_RUN = 100  # missing payments asked about at once; a rerun asks about the rest
MAX_CONFLICTS = 3
KEYS_KEPT = 8  # bills whose keys are remembered (a 100,000-row bill's: about 10 MiB)


class BillMissing(NothingToDo):
    """No bill of the day is imported: fetch or import it first."""


@dataclass(frozen=True)
class Run:
    app_id: str
    day: date
    run: int
    bill_id: str
    counts: dict[str, int]
    opened: list[str]
    closed: list[str]
    queried: dict[str, str]  # finding id -> what the trade query found
    to_ask: tuple[str, ...] = ()  # the open missing_in_ledger findings, asked about after the run is recorded


class ReconcileService:
    def __init__(self, store: LedgerStore, bills: BillService, engine: sa.Engine, apps: Mapping[str, AlipayApp], *,
                 clock: Callable[[], datetime], caught_up: Callable[[int], bool],
                 queries: QueryService | None = None, wait_seconds: float = 30.0) -> None:
        """`caught_up(position)`: whether the read model has applied the log up to `position`."""
        self.store, self.bills, self.engine, self.apps, self.clock = store, bills, engine, apps, clock
        self.caught_up, self.queries, self.wait_seconds = caught_up, queries, wait_seconds
        self._known_keys: dict[str, frozenset[str]] = {}  # a bill's sha256 -> the keys of its rows

    # -- matching -------------------------------------------------------------------------------

    def match_day(self, day: date, *, who: str, app_id: str | None = None) -> Run:
        """Match the app's bill of `day` (China Standard Time) with the ledger and record the run, then ask Alipay
        about the payments the ledger has not booked (at most QUERIES_PER_RUN). BillMissing when no bill of the day
        is imported; StorageUnavailable when the read model does not catch up in time."""
        app_id = self._app(app_id)
        asked = self._query_missing(self._recorded_run(app_id, day, who))
        if CONFIRMED not in asked.queried.values():
            return asked
        # The payments Alipay confirmed are booked now: one more run matches them and posts their fees.
        again = self._recorded_run(app_id, day, who)
        return Run(app_id, day, again.run, again.bill_id, again.counts, asked.opened + again.opened,
                   asked.closed + again.closed, asked.queried)

    def match_bill(self, bill: Bill, *, who: str) -> Run:
        """Match the day of a bill just imported or fetched (its app's, its China-Standard-Time day)."""
        return self.match_day(date.fromisoformat(bill.bill_date), who=who, app_id=bill.app_id)

    def _recorded_run(self, app_id: str, day: date, who: str) -> Run:
        for _ in range(MAX_CONFLICTS):
            self._wait_for_read_model()
            try:
                run = self._run(app_id, day, who)
                break
            except IntegrityError:
                log.info("another run of %s %s was recorded first: matching again", app_id, day)
            except PersistenceError as exc:
                raise StorageUnavailable(f"event store unavailable: {exc}") from exc
        else:
            raise StorageUnavailable(f"the reconciliation of {day} kept changing under this run; try again")
        return run

    def _run(self, app_id: str, day: date, who: str) -> Run:
        found = bill_of(self.engine, app_id, day)
        if found is None:
            raise BillMissing(f"no bill of app {app_id} for {day} is imported: `ledger reconcile fetch --date {day}` "
                              "or import one")
        rows = [_entry(row) for row in self._rows(found)]
        neighbours, next_bill = self._neighbours(app_id, day)
        side = ledger_side(self.engine, app_id, day, payments=[r.out_trade_no for r in rows if r.kind == PAYMENT],
                           refunded=[r.out_trade_no for r in rows if r.kind != PAYMENT])
        result = match(day, rows, side.trades, side.refunds, booked_payments=side.booked_payments,
                       booked_refunds=side.booked_refunds, neighbours=neighbours, next_bill=next_bill,
                       registration=side.registration)
        now = self.clock()
        record = self._day(app_id, day)
        run_number = record.runs + 1
        changed, opened, kinds = self._open(app_id, day, result, run_number, now)
        closed = self._close_unfound(record, set(kinds), run_number, changed)
        changed += self._settle_carried(app_id, day, rows, run_number, closed)
        fees = [_fee_row(row) for row in result.matched]
        for start in range(0, len(fees), FEE_CHUNK):  # an event of a 100,000-row bill would be megabytes
            record.post_fees(found["bill_id"], fees[start:start + FEE_CHUNK])
        record.record_run(bill_id=found["bill_id"], sha256=found["sha256"], who=who, at=now,
                          bill=_bill_totals(rows), ledger=_ledger_totals(side), counts=result.counts(),
                          opened=opened, closed=closed, kinds=kinds, next_bill=next_bill)
        self.store.save(record, *changed)
        return Run(app_id, day, run_number, found["bill_id"], result.counts(), opened, closed, {},
                   tuple(fid for fid, kind in kinds.items() if kind == MISSING_IN_LEDGER))

    def _open(self, app_id: str, day: date, result: Matching, run: int,
              now: datetime) -> tuple[list[FindingStream], list[str], dict[str, str]]:
        """The run's findings: new ones opened, carried ones the next bill did not settle confirmed, closed ones
        found again reopened. Returns the streams changed, the ids opened, and every finding's id and kind."""
        changed, opened, kinds = [], [], {}
        for finding in result.findings:
            finding_id = FindingStream.create_id(app_id, day, finding.kind, finding.key)
            kinds[str(finding_id)] = finding.kind
            known = self._finding(finding_id)
            if known is None:
                changed.append(_new_finding(app_id, day, finding, run, now))
                opened.append(str(finding_id))
                continue
            if known.state == CARRIED and not finding.carried:
                known.confirm(finding.detail, run)
            known.reopen(finding.detail, run)
            if list(known.pending_events):
                changed.append(known)
        return changed, opened, kinds

    def _close_unfound(self, record: ReconciliationDay, found: set[str], run: int,
                       changed: list[FindingStream]) -> list[str]:
        closed = []
        for finding_id in sorted(set(record.findings) - found):
            known = self._finding(UUID(finding_id))
            if known is not None and known.close(f"run {run} of the day no longer finds it: settled by later "
                                                 "evidence", by=f"run {run}"):
                changed.append(known)
                closed.append(finding_id)
        return closed

    def _settle_carried(self, app_id: str, day: date, rows: list[BillEntry], run: int,
                        closed: list[str]) -> list[FindingStream]:
        """The previous day's findings carried over to this bill: closed if it has them, else they count now."""
        before = day - timedelta(days=1)
        previous = load(self.store, ReconciliationDay.create_id(app_id, before), ReconciliationDay)
        if previous is None:
            return []
        keys = {row.key for row in rows}
        changed = []
        for finding_id, kind in sorted(previous.findings.items()):
            if kind not in CARRIED_KINDS:
                continue
            known = self._finding(UUID(finding_id))
            if known is None or known.state != CARRIED:
                continue
            if known.key in keys:
                known.close(f"it is on the bill of {day}", by=f"bill of {day}")
                closed.append(finding_id)
            else:
                known.confirm(f"{known.detail.split(';')[0]}; the bills of {before} and {day} do not have it", run)
            changed.append(known)
        return changed

    def _query_missing(self, run: Run) -> Run:
        if self.queries is None or not self.queries.queryable(run.app_id):
            return run
        findings = [f for fid in run.to_ask[:QUERIES_PER_RUN] if (f := self._finding(UUID(fid))) and not f.settled]
        answered = {str(finding.id): confirm_by_query(self.store, self.queries, finding) for finding in findings}
        return Run(run.app_id, run.day, run.run, run.bill_id, run.counts, run.opened, run.closed, answered)

    # -- resolving ------------------------------------------------------------------------------

    def resolve(self, finding_id: UUID, *, who: str, note: str) -> FindingStream:
        """An operator's or finance's resolution, with who and why. NothingToDo when it is settled already."""
        finding = self._finding(finding_id)
        if finding is None:
            raise LookupError(f"no finding {finding_id}")
        finding.resolve(who, note)
        try:
            self.store.save(finding)
        except IntegrityError:
            raise NothingToDo(f"finding {finding_id} changed meanwhile; look again") from None
        except PersistenceError as exc:
            raise StorageUnavailable(f"event store unavailable: {exc}") from exc
        return finding

    def finding(self, finding_id: UUID) -> FindingStream | None:
        return self._finding(finding_id)

    # -- reading --------------------------------------------------------------------------------

    def _rows(self, found: dict[str, object]) -> tuple[BillRow, ...]:
        bill = self.bills.bill(UUID(str(found["bill_id"])))
        if bill is None:
            raise StorageUnavailable(f"bill {found['bill_id']} is in the read model but not in the log")
        return read_bill(self.bills.bytes_of(bill)).rows

    def _neighbours(self, app_id: str, day: date) -> tuple[frozenset[str], bool]:
        """The keys on the bills of the days either side (those imported), and whether the next day's is."""
        keys: set[str] = set()
        next_bill = False
        for other in (day - timedelta(days=1), day + timedelta(days=1)):
            found = bill_of(self.engine, app_id, other)
            if found is not None:
                keys.update(self._keys(str(found["sha256"]), found))
                next_bill = next_bill or other > day
        return frozenset(keys), next_bill

    def _keys(self, sha256: str, found: dict[str, object]) -> frozenset[str]:
        """A bill's keys, remembered by its hash (a file's content never changes): reading a 100,000-row bill again
        was half of a run's time, and every run of a day reads the bills of the days either side."""
        if sha256 not in self._known_keys:
            if len(self._known_keys) >= KEYS_KEPT:
                self._known_keys.pop(next(iter(self._known_keys)))
            self._known_keys[sha256] = frozenset(_entry(row).key for row in self._rows(found))
        return self._known_keys[sha256]

    def _wait_for_read_model(self) -> None:
        head = self.store.ping()
        deadline = time.monotonic() + self.wait_seconds
        while not self.caught_up(head):
            if time.monotonic() >= deadline:
                raise StorageUnavailable("the read model has not caught up with the log: is `ledger serve` (or "
                                         "`ledger projections run`) running?")
            time.sleep(0.05)

    def _day(self, app_id: str, day: date) -> ReconciliationDay:
        found = load(self.store, ReconciliationDay.create_id(app_id, day), ReconciliationDay)
        return found if found is not None else ReconciliationDay(app_id=app_id, day=day.isoformat())

    def _finding(self, finding_id: UUID) -> FindingStream | None:
        return load(self.store, finding_id, FindingStream)

    def _app(self, app_id: str | None) -> str:
        if app_id is None and len(self.apps) == 1:
            return next(iter(self.apps))
        if app_id is None or app_id not in self.apps:
            raise InvalidRequest(f"name the app: one of {', '.join(sorted(self.apps))}")
        return app_id


def _entry(row: BillRow) -> BillEntry:
    return BillEntry(row.kind, row.out_trade_no, row.trade_no, row.refund_request_no, row.total_amount,
                     row.receipt_amount, row.fee, row.share, row.line)


def _new_finding(app_id: str, day: date, finding: Finding, run: int, now: datetime) -> FindingStream:
    return FindingStream(app_id=app_id, day=day.isoformat(), kind=finding.kind, key=finding.key,
                         out_trade_no=finding.out_trade_no, request_no=finding.request_no, detail=finding.detail,
                         bill=side_values(finding.bill), ledger=side_values(finding.ledger), carried=finding.carried,
                         run=run, at=now)


def _bill_totals(rows: list[BillEntry]) -> dict[str, str]:
    payments = [r for r in rows if r.kind == PAYMENT]
    refunds = [r for r in rows if r.kind != PAYMENT]
    return {"payments": str(len(payments)), "payment_amount": str(sum((r.total_amount for r in payments), ZERO)),
            "refunds": str(len(refunds)), "refund_amount": str(-sum((r.total_amount for r in refunds), ZERO)),
            "fee": str(sum((r.fee for r in rows), ZERO)), "share": str(sum((r.share for r in rows), ZERO)),
            "net": str(sum((r.receipt_amount + r.fee + r.share for r in rows), ZERO))}


def _ledger_totals(side: LedgerSide) -> dict[str, str]:
    paid = [side.trades[no].paid_amount or ZERO for no in side.booked_payments]
    return {"payments": str(len(paid)), "payment_amount": str(sum(paid, ZERO)),
            "refunds": str(len(side.booked_refunds)),
            "refund_amount": str(sum((r.amount for r in side.booked_refunds), ZERO))}


def _fee_row(row: BillEntry) -> list[str]:
    return [row.key, row.kind, row.out_trade_no, row.trade_no, str(row.total_amount), str(row.receipt_amount),
            str(row.fee), str(row.share)]

