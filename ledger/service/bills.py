"""Importing Alipay's trade bill as evidence: read and checked whole first (ledger.alipay.bill: a bill whose detail
and summary disagree is refused, nothing recorded), its bytes kept by their SHA-256, then one `BillImported`.

The same file imported again finds its stream and records nothing new. The bytes are kept before the event: a
crash between the two leaves only bytes no event points at (kept again, harmlessly, by the next import).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.outbound.http import HttpClient, OutboundError
from ledger.alipay.bill import TradeBill, read_bill
from ledger.config import AlipayApp
from ledger.domain.bill import BILL_METHOD, BILL_NOT_YET, Bill
from ledger.domain.errors import BillNotYet, BillRefused, InvalidRequest, StorageUnavailable
from ledger.service.ports import Gateway
from ledger.service.saving import load

# A day's bill of a busy merchant is a few megabytes zipped; this bounds what one import holds in memory.
MAX_BILL_BYTES = 64 * 1024 * 1024
DOWNLOAD_SECONDS = 30.0  # Alipay's download URL expires after 30 s: the download is started at once, bounded by it


class BillFiles(Protocol):
    """The bytes of imported bills by SHA-256 (ledger.adapters.bills: sql, folder, memory)."""

    def keep(self, sha256: str, data: bytes) -> None: ...

    def read(self, sha256: str) -> bytes | None: ...


@dataclass(frozen=True)
class Imported:
    bill_id: UUID
    sha256: str
    newly: bool  # False: this very file was imported before, and nothing new was recorded
    bill: Bill
    read: TradeBill | None  # the parsed bill, when it was read now


class BillService:
    def __init__(self, store: LedgerStore, files: BillFiles, apps: Mapping[str, AlipayApp], *,
                 clock: Callable[[], datetime], gateway: Gateway | None = None,
                 download: HttpClient | None = None) -> None:
        """`gateway` gives a day's bill's download URL, which `download` fetches (within Alipay's 30 s)."""
        self.store, self.files, self.apps, self.clock = store, files, apps, clock
        self.gateway = gateway
        self.download = download or HttpClient(timeout=DOWNLOAD_SECONDS, max_answer_bytes=MAX_BILL_BYTES)

    def fetch(self, day: date, *, who: str, app_id: str | None = None) -> Imported:
        """Ask the gateway for the app's trade bill of `day` (China Standard Time), download it at once and import
        it. BillNotYet when Alipay has none for the day yet; GatewayError when the gateway gives no answer to
        believe; BillRefused for a file that is not a whole, consistent bill."""
        app = self._app(app_id)
        if self.gateway is None:
            raise StorageUnavailable("no gateway is configured to fetch bills from")
        answer = self.gateway.call(app.app_id, BILL_METHOD, {"bill_type": "trade", "bill_date": day.isoformat()})
        if answer.sub_code in BILL_NOT_YET:
            raise BillNotYet(f"Alipay has no trade bill of app {app.app_id} for {day} yet ({answer.sub_code})")
        url = str(answer.fields.get("bill_download_url", ""))
        if not answer.ok or not url:
            raise BillRefused(f"the gateway gave no bill for {day}: {answer.code} {answer.sub_code} "
                              f"{answer.fields.get('sub_msg', '')}".strip(), reason="no_bill")
        try:
            got = self.download.get(url)
        except OutboundError as exc:
            raise StorageUnavailable(f"the bill of {day} could not be downloaded: {exc}") from None
        if got.status != 200 or not got.body:
            raise StorageUnavailable(f"the bill of {day} could not be downloaded: HTTP {got.status}")
        return self.import_bill(got.body, source=f"gateway {day}", who=who, app_id=app.app_id, day=day)

    def import_bill(self, data: bytes, *, source: str, who: str, app_id: str | None = None,
                    day: date | None = None) -> Imported:
        """Read, check and keep a bill (the zip as Alipay gives it, or its detail CSV) for `app_id` (the only app
        when there is one). Raises BillRefused (nothing recorded) for what is not a whole, consistent bill, or
        (with `day`: the day asked for) a bill of another day."""
        if len(data) > MAX_BILL_BYTES:
            raise BillRefused(f"the file is larger than {MAX_BILL_BYTES // 2**20} MiB: not a day's trade bill",
                              reason="too_large")
        app = self._app(app_id)
        sha256 = hashlib.sha256(data).hexdigest()
        bill_id = Bill.create_id(sha256)
        known = self._bill(bill_id)
        if known is not None and (day is None or known.bill_date == day.isoformat()):
            return Imported(bill_id, sha256, False, known, None)
        read = read_bill(data)
        if day is not None and read.bill_date != day:
            raise BillRefused(f"the bill asked for {day} is the bill of {read.bill_date}", reason="wrong_day")
        if app.seller_id and read.account and not read.account.startswith(app.seller_id):
            raise BillRefused(f"the bill is for Alipay account {read.account}, not app {app.app_id}'s seller "
                              f"{app.seller_id}", reason="wrong_account")
        totals = read.totals
        bill = Bill(sha256=sha256, size=len(data), source=source[:300], who=who[:200], app_id=app.app_id,
                    account=read.account, bill_date=read.bill_date.isoformat(), period_start=read.start,
                    period_end=read.end, payments=totals.payments, refunds=totals.refunds,
                    total_amount=totals.total_amount, receipt_amount=totals.receipt_amount, fee=totals.fee,
                    share=totals.share, net=totals.net, imported_at=self.clock())
        try:
            self.files.keep(sha256, data)
        except Exception as exc:
            raise StorageUnavailable(f"could not keep the bill's bytes: {type(exc).__name__}") from exc
        try:
            self.store.save(bill)
        except IntegrityError:  # imported at the same moment by someone else: theirs is the record
            found = self._bill(bill_id)
            if found is None:
                raise StorageUnavailable("the bill's import conflicted and is not there") from None
            return Imported(bill_id, sha256, False, found, read)
        except PersistenceError as exc:
            raise StorageUnavailable(f"event store unavailable: {exc}") from exc
        return Imported(bill_id, sha256, True, bill, read)

    def bill(self, bill_id: UUID) -> Bill | None:
        return self._bill(bill_id)

    def bytes_of(self, bill: Bill) -> bytes:
        """The exact file imported, checked against the hash its event recorded."""
        data = self.files.read(bill.sha256)
        if data is None:
            raise StorageUnavailable(f"the bytes of bill {bill.sha256} are not where they were kept")
        return data

    def _bill(self, bill_id: UUID) -> Bill | None:
        return load(self.store, bill_id, Bill)

    def _app(self, app_id: str | None) -> AlipayApp:
        if app_id is None and len(self.apps) == 1:
            return next(iter(self.apps.values()))
        app = self.apps.get(app_id or "")
        if app is None:
            raise InvalidRequest(f"name the bill's app: one of {', '.join(sorted(self.apps))}")
        return app
