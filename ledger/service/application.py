"""The application service: commands in, events out. Every entrypoint calls one method here.

Exactly once: a per-order lock keeps concurrent copies of a notification from racing, and the stream's
version check is the fence when the lock is gone (expired mid-work, or Redis unreachable): on a conflict
we reload the order and decide again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks.holds import lock_key
from ledger.adapters.metrics import Metrics
from ledger.adapters.refusals.quarantine import MemoryQuarantineLog, Quarantined, QuarantineLog
from ledger.adapters.refusals.rejections import Rejection, RejectionLog
from ledger.alipay.form import parse_notification
from ledger.alipay.signature import verify
from ledger.config import AlipayApp
from ledger.domain.errors import (
    EncryptedMessage,
    InvalidRequest,
    OrderNotFound,
    Rejected,
    SellerMismatch,
    StorageUnavailable,
    Unbookable,
    UnknownApp,
    UnknownOrder,
)
from ledger.domain.message import MessageNotice, is_message
from ledger.domain.notice import TradeNotice
from ledger.domain.order import DEFAULT_MAX_COPIES, Order
from ledger.service.memo import VerifiedMemo
from ledger.service.messages import record_message
from ledger.service.ports import Intake, OrderLock, Recorded, RecordedMessage, Verified, VerifiedMessage
from ledger.service.saving import save_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")


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
                 apps: Mapping[str, AlipayApp], *, intake: Intake,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 alert: Callable[..., bool] | None = None, signature_burst: Any = None,
                 metrics: Metrics | None = None, quarantine: QuarantineLog | None = None,
                 max_copies: int = DEFAULT_MAX_COPIES) -> None:
        """`intake`: records verified callbacks (the group commit, ledger.intake, chosen by the composition
        root); `metrics` are shared with it. `max_copies`: of one message's notify_id, recorded (the intake
        has its own for trade notifications)."""
        self.store, self.lock, self.rejections, self.apps, self.intake = store, lock, rejections, apps, intake
        self.quarantine = quarantine if quarantine is not None else MemoryQuarantineLog()
        self.clock, self.alert, self.signature_burst = clock, alert, signature_burst
        self.metrics = metrics or Metrics()
        self.max_copies = max_copies
        self._checked = VerifiedMemo(self._check)
        self._own_loop = _LoopThread()  # for sync callers: the CLI, jobs, tests

    def close(self) -> None:
        """Refuse later callbacks; commit those queued by sync callers (`stop_loop` first, on the serving loop)."""
        self.intake.close()
        self._own_loop.close(self.intake.stop)

    async def stop_loop(self) -> None:
        """On the serving loop as it shuts down: commit what it queued, close its connections."""
        await self.intake.stop()

    def record_callback(self, cmd: RecordCallback) -> Recorded | RecordedMessage:
        """Verify, record, and return once the commit that holds the callback is done (blocking: for callers
        on a thread, through an event loop the service keeps for them). A message of the message service is
        recorded on the calling thread."""
        try:
            verified = self.verify(cmd)
            if isinstance(verified, VerifiedMessage):
                return self.record_message(verified)
            return self._own_loop.run(self.intake.record(verified))
        except (Rejected, UnknownOrder) as exc:
            self.refuse(cmd, exc)
            raise

    def verify(self, cmd: RecordCallback) -> Verified | VerifiedMessage:
        """Signature and merchant checks, CPU only: raises Rejected (then pass it to `refuse`). A trade
        notification, or a message of the message service (ledger.domain.message)."""
        received_at = self.clock()
        notice, params, key = self._checked(cmd.body)
        if isinstance(notice, MessageNotice):
            return VerifiedMessage(notice, params, received_at, cmd.remote_addr, uuid4().hex, key)
        return Verified(notice, params, received_at, cmd.remote_addr, uuid4().hex, key)

    def _check(self, body: bytes) -> tuple[TradeNotice | MessageNotice, dict[str, str], str]:
        """The parsed notification (its params are shared by every copy: never change them).

        What is recorded is the canonical form: parameters with an empty value are dropped. They lie outside
        what Alipay signs, so anyone could append `&anything=` to a genuine body; without them the record
        still re-verifies, and every padded copy of a notification records the same parameters."""
        params = parse_notification(body)
        app = self.apps.get(params.get("app_id", ""))
        if app is None:
            raise UnknownApp(f"no Alipay key is configured for app_id {params.get('app_id')!r}"[:300])
        # A message of the message service is signed as a trade notification is: verified over all parameters
        # but sign and sign_type (V1), then with sign_type (V2), as alipay paylink's AlipayNotifyClient and
        # telmochan/ant-open-sdk's AbstractBaseSecurityManger verify messages.
        key = verify(params, app.keys).fingerprint
        message = is_message(params)
        if message and params.get("encrypt_type"):
            raise EncryptedMessage(f"biz_content is encrypted ({params['encrypt_type']!r}, AES): no AES key is "
                                   "configured to read it"[:300])
        # A message names no seller: the seller check is for trade notifications.
        if not message and app.seller_id and params.get("seller_id") != app.seller_id:
            raise SellerMismatch(f"seller_id {params.get('seller_id')!r} is not this merchant's seller"[:300])
        params = {key: value for key, value in params.items() if value}
        try:
            return (MessageNotice if message else TradeNotice).from_params(params), params, key
        except InvalidRequest as exc:  # Alipay's, but nothing the ledger can book
            raise Unbookable(f"{exc.reason}: {exc}", params) from exc

    async def record(self, verified: Verified | VerifiedMessage) -> Recorded | RecordedMessage:
        """Record a verified callback with the next group commit, awaited on an event loop: the HTTP endpoint's
        way in. Raises UnknownOrder in strict mode (pass that to `refuse` too), or a RetryLater. A message is
        saved alone, on a thread of the loop's default executor (`record_message`)."""
        if isinstance(verified, VerifiedMessage):
            return await asyncio.to_thread(self.record_message, verified)
        return await self.intake.record(verified)

    def record_message(self, verified: VerifiedMessage) -> RecordedMessage:
        """Record a verified message of the message service and apply what the ledger knows of it, under its
        order's lock (blocking; ledger.service.messages). Raises a RetryLater when nothing was recorded."""
        return record_message(self.store, self.lock, verified, max_copies=self.max_copies, metrics=self.metrics)

    def register_order(self, cmd: RegisterOrder) -> Registered:
        def register(order: Order) -> bool:
            newly = not order.registered
            order.register(cmd.total_amount, cmd.subject)
            return newly

        with self.lock.hold(lock_key(cmd.app_id, cmd.out_trade_no, cmd.merchant)):
            saved = save_with_retries(self.store, Order.create_id(cmd.app_id, cmd.out_trade_no, cmd.merchant),
                                      register, metrics=self.metrics, create=lambda: Order(
                                          app_id=cmd.app_id, out_trade_no=cmd.out_trade_no, merchant=cmd.merchant))
        assert saved is not None  # there is a `create`
        return Registered(saved.order, saved.decision, saved.position)

    def manual_retry(self, app_id: str, out_trade_no: str, *, who: str, note: str, merchant: str = "") -> list[str]:
        """An operator asks for the order's abandoned deliveries to be tried again (ManualRetryRequested)."""
        return self._operator_action(app_id, out_trade_no, merchant,
                                     lambda order: order.request_manual_retry(who, note))

    def resolve(self, app_id: str, out_trade_no: str, *, who: str, note: str, merchant: str = "") -> list[str]:
        """An operator settles the order's abandoned deliveries by hand (ManuallyResolved, with why)."""
        return self._operator_action(app_id, out_trade_no, merchant, lambda order: order.resolve_manually(who, note))

    def _operator_action(self, app_id: str, out_trade_no: str, merchant: str,
                         act: Callable[[Order], list[str]]) -> list[str]:
        with self.lock.hold(lock_key(app_id, out_trade_no, merchant)):
            saved = save_with_retries(self.store, Order.create_id(app_id, out_trade_no, merchant), act,
                                      metrics=self.metrics)
        if saved is None:
            raise OrderNotFound(f"no order {out_trade_no} of app {app_id}")
        return saved.decision

    def get_order(self, app_id: str, out_trade_no: str, version: int | None = None, *,
                  merchant: str = "") -> Order | None:
        order_id = Order.create_id(app_id, out_trade_no, merchant)
        try:
            if version is None:
                return self.store.get_order(order_id)
            return self.store.repository.get(order_id, version=version)
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


class _LoopThread:
    """An event loop on a thread of its own, started with the first call: where a sync caller's callbacks
    are recorded (the group commit runs on an event loop)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._state:  # submitted under the lock: `close()` sees every call made before it
            if self._closed:
                coro.close()
                raise StorageUnavailable("the ledger is shutting down")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="ledger-service-loop",
                                                daemon=True)
                self._thread.start()
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:  # `close()` cancelled what `last()` did not finish
            raise StorageUnavailable("the ledger is shutting down") from None

    def close(self, last: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `last()` on the loop, if it ever started; cancel whatever it left (so no caller waits for
        ever), then stop the loop. A later `run()` is refused."""
        with self._state:
            self._closed = True
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(last(), loop).result(30)
        except Exception:  # shutting down: say so, and go on stopping
            log.exception("could not commit what sync callers had queued")
        finally:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if not thread.is_alive():
                loop.close()


async def _cancel_the_rest() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
