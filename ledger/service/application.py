"""The application service: commands in, events out. Every entrypoint calls one method here.

Exactly once: a per-order lock keeps concurrent copies of a notification from racing, and the stream's
version check is the fence when the lock is gone (expired mid-work, or Redis unreachable): on a conflict
we reload the order and decide again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import PersistenceError

from ledger.adapters.eventstore.postgres import FailFastPostgresRecorder
from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks import OrderLock, lock_key
from ledger.adapters.metrics import Metrics
from ledger.adapters.refusals.quarantine import MemoryQuarantineLog, Quarantined, QuarantineLog
from ledger.adapters.refusals.rejections import Rejection, RejectionLog
from ledger.alipay.form import parse_notification
from ledger.alipay.signature import verify
from ledger.config import AlipayApp
from ledger.domain.errors import (
    InvalidRequest,
    OrderNotFound,
    Rejected,
    SellerMismatch,
    StorageUnavailable,
    Unbookable,
    UnknownApp,
    UnknownOrder,
)
from ledger.domain.notice import TradeNotice
from ledger.domain.order import DEFAULT_MAX_COPIES, Order
from ledger.intake.batches import GroupCommit, Recorded, Verified
from ledger.intake.loop import LoopGroupCommit
from ledger.service.memo import VerifiedMemo
from ledger.service.saving import save_with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordCallback:
    body: bytes
    remote_addr: str


@dataclass(frozen=True)
class RegisterOrder:
    app_id: str
    out_trade_no: str
    total_amount: Decimal
    subject: str = ""
    merchant: str = ""  # a service provider's merchant (its auth_app_id), for an ISV app


@dataclass(frozen=True)
class Registered:
    order: Order
    newly: bool  # False: it was registered alike before
    position: int


class LedgerService:
    def __init__(self, store: LedgerStore, lock: OrderLock, rejections: RejectionLog,
                 apps: Mapping[str, AlipayApp], *, require_known_orders: bool = False,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 alert: Callable[..., bool] | None = None, signature_burst: Any = None,
                 metrics: Metrics | None = None, lock_wait_seconds: float = 3.0,
                 quarantine: QuarantineLog | None = None, max_copies: int = DEFAULT_MAX_COPIES) -> None:
        self.store, self.lock, self.rejections, self.apps = store, lock, rejections, apps
        self.quarantine = quarantine if quarantine is not None else MemoryQuarantineLog()
        self.clock, self.alert, self.signature_burst = clock, alert, signature_burst
        self.metrics = metrics or Metrics()
        options = dict(require_known_orders=require_known_orders, wait_seconds=lock_wait_seconds,
                       metrics=self.metrics, max_copies=max_copies)
        self.intake = GroupCommit(store, lock, **options)
        # On PostgreSQL the serving loop commits the notifications itself (see ledger.intake.loop).
        self.loop_intake = (LoopGroupCommit(store, lock, **options)
                            if isinstance(store.recorder, FailFastPostgresRecorder) else None)
        self._checked = VerifiedMemo(self._check)

    def close(self) -> None:
        """Commit the callbacks already queued; refuse later ones (`stop_loop` first, on the serving loop)."""
        if self.loop_intake is not None:
            self.loop_intake.close()
        self.intake.close()

    async def stop_loop(self) -> None:
        """On the serving loop as it shuts down: commit what it queued, close its connections."""
        if self.loop_intake is not None:
            await self.loop_intake.stop()

    def record_callback(self, cmd: RecordCallback) -> Recorded:
        """Verify, record, and return once the commit that holds the callback is done (blocking)."""
        try:
            return self.submit(self.verify(cmd)).result()
        except (Rejected, UnknownOrder) as exc:
            self.refuse(cmd, exc)
            raise

    def verify(self, cmd: RecordCallback) -> Verified:
        """Signature and merchant checks, CPU only: raises Rejected (then pass it to `refuse`)."""
        received_at = self.clock()
        notice, params = self._checked(cmd.body)
        return Verified(notice, params, received_at, cmd.remote_addr, uuid4().hex)

    def _check(self, body: bytes) -> tuple[TradeNotice, dict[str, str]]:
        """The parsed notification (its params are shared by every copy: never change them).

        What is recorded is the canonical form: parameters with an empty value are dropped. They lie outside
        what Alipay signs, so anyone could append `&anything=` to a genuine body; without them the record
        still re-verifies, and every padded copy of a notification records the same parameters."""
        params = parse_notification(body)
        app = self.apps.get(params.get("app_id", ""))
        if app is None:
            raise UnknownApp(f"no Alipay key is configured for app_id {params.get('app_id')!r}"[:300])
        verify(params, app.public_key)
        if app.seller_id and params.get("seller_id") != app.seller_id:
            raise SellerMismatch(f"seller_id {params.get('seller_id')!r} is not this merchant's seller"[:300])
        params = {key: value for key, value in params.items() if value}
        try:
            return TradeNotice.from_params(params), params
        except InvalidRequest as exc:  # Alipay's, but nothing the ledger can book
            raise Unbookable(f"{exc.reason}: {exc}", params) from exc

    async def record(self, verified: Verified) -> Recorded:
        """`submit`, awaited on an event loop: the HTTP endpoint's way in (errors as for `submit`)."""
        if self.loop_intake is not None:
            return await self.loop_intake.record(verified)
        return await asyncio.wrap_future(self.intake.submit(verified))

    def submit(self, verified: Verified) -> Future[Recorded]:
        """Queue a verified callback for the next group commit; the future fails with UnknownOrder in
        strict mode (pass that to `refuse` too), or with a RetryLater."""
        return self.intake.submit(verified)

    def register_order(self, cmd: RegisterOrder) -> Registered:
        newly = False

        def register(order: Order) -> None:
            nonlocal newly
            newly = not order.registered
            order.register(cmd.total_amount, cmd.subject)

        with self.lock.hold(lock_key(cmd.app_id, cmd.out_trade_no, cmd.merchant)):
            order, position = save_with_retries(self.store, self.metrics,
                Order.create_id(cmd.app_id, cmd.out_trade_no, cmd.merchant), register,
                create=lambda: Order(app_id=cmd.app_id, out_trade_no=cmd.out_trade_no, merchant=cmd.merchant))
        return Registered(order, newly, position)

    def manual_retry(self, app_id: str, out_trade_no: str, *, who: str, note: str, merchant: str = "") -> list[str]:
        """An operator asks for the order's abandoned deliveries to be tried again (ManualRetryRequested)."""
        return self._operator_action(app_id, out_trade_no, merchant,
                                     lambda order: order.request_manual_retry(who, note))

    def resolve(self, app_id: str, out_trade_no: str, *, who: str, note: str, merchant: str = "") -> list[str]:
        """An operator settles the order's abandoned deliveries by hand (ManuallyResolved, with why)."""
        return self._operator_action(app_id, out_trade_no, merchant, lambda order: order.resolve_manually(who, note))

    def _operator_action(self, app_id: str, out_trade_no: str, merchant: str,
                         act: Callable[[Order], list[str]]) -> list[str]:
        done: list[str] = []

        def decide(order: Order) -> None:
            done[:] = act(order)

        def missing() -> Order:
            raise OrderNotFound(f"no order {out_trade_no} of app {app_id}")

        with self.lock.hold(lock_key(app_id, out_trade_no, merchant)):
            save_with_retries(self.store, self.metrics, Order.create_id(app_id, out_trade_no, merchant), decide,
                              create=missing)
        return done

    def get_order(self, app_id: str, out_trade_no: str, version: int | None = None, *,
                  merchant: str = "") -> Order | None:
        order_id = Order.create_id(app_id, out_trade_no, merchant)
        try:
            if version is None:
                return self.store.get_order(order_id)
            return self.store.repository.get(order_id, version=version)  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            return None
        except PersistenceError as exc:
            raise StorageUnavailable(str(exc)) from exc

    def history(self, app_id: str, out_trade_no: str, *, after_version: int | None = None,
                limit: int | None = None, merchant: str = "") -> list[object]:
        """The order's events by version: all of them, or at most `limit` after `after_version` (paged by the
        database, so a long stream is never read whole for one page)."""
        try:
            return list(self.store.events.get(Order.create_id(app_id, out_trade_no, merchant), gt=after_version,
                                              limit=limit))
        except PersistenceError as exc:
            raise StorageUnavailable(str(exc)) from exc

    def refuse(self, cmd: RecordCallback, exc: Rejected | UnknownOrder) -> None:
        """Keep a refused callback in the rejected log (or, verified but unbookable, whole in quarantine),
        count it, and alert when that is news (blocking)."""
        received_at = self.clock()
        reason = exc.reason
        log.warning("refused notification from %s: %s (%s)", cmd.remote_addr, reason, str(exc)[:300])
        if isinstance(exc, Unbookable):
            self._keep_unbookable(Quarantined.of(exc.params, received_at, cmd.remote_addr, reason, str(exc), cmd.body))
            return
        self.rejections.record(Rejection.of(received_at, cmd.remote_addr, reason, str(exc), cmd.body))
        if reason == "bad_signature":
            self.metrics.signature_failures.inc()
        if self.alert is None:
            return
        try:
            if reason == "unknown_order":
                self.alert("unknown_order", str(exc), f"{exc}: Alipay retries; register it (POST /api/orders)")
            elif reason == "bad_signature" and self.signature_burst and self.signature_burst.hit():
                self.alert("signature_failures", "burst", f"{self.signature_burst.threshold} or more notifications "
                           f"failed signature verification within a minute; the latest from {cmd.remote_addr}")
        except Exception:  # an alert must never turn a clean answer into an error
            log.exception("could not raise an alert for a refused notification")

    def _keep_unbookable(self, item: Quarantined) -> None:
        # Kept before it is answered: if this fails, the answer is 503 and Alipay sends it again.
        try:
            self.quarantine.keep(item)
        except Exception as exc:
            raise StorageUnavailable(f"could not keep an unbookable notification: {type(exc).__name__}") from exc
        if self.alert is None:
            return
        try:  # raised for every copy: the alert's own stream makes it once per window
            self.alert("unbookable_notification", item.name,
                       f"a notification signed by Alipay could not be booked ({item.detail[:300]}); "
                       "it is kept whole in quarantine (GET /api/quarantined-callbacks)")
        except Exception:
            log.exception("could not raise an alert for an unbookable notification")
