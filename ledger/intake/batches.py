"""Group commit of verified callbacks: those that arrive together are decided together and saved at once.

Whatever has queued up since the last commit is taken as one batch: all its orders are locked in one round
trip, loaded in one query, each callback applied to its order in arrival order, and every changed order
saved in one transaction: one table lock, one commit for the whole batch. Only then is each caller
answered. Exactly once per order holds as before: the lock keeps other processes out, and the version
check fences the rest. An order whose lock another process holds waits for a later batch; a batch refused
by the version check is redone order by order, so one conflicting order fails no other.

`Batches` holds those rules; two drivers feed it. `GroupCommit` (here) is a thread, for callers on any
thread and for the embedded mode; `ledger.intake.loop.LoopGroupCommit` is a task on the serving event loop,
which `ledger serve` uses on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks import ManyHold, OrderLock, lock_key
from ledger.adapters.metrics import Metrics
from ledger.domain.errors import LockTimeout, StorageUnavailable, UnknownOrder
from ledger.domain.notice import TradeNotice
from ledger.domain.order import DEFAULT_MAX_COPIES, Order
from ledger.service.saving import committed_anyway, save_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Verified:
    """A callback whose signature and merchant checked out, ready to be recorded."""

    notice: TradeNotice
    params: dict[str, str]
    received_at: datetime
    remote_addr: str
    delivery_id: str


@dataclass(frozen=True)
class Recorded:
    order_id: UUID
    out_trade_no: str
    version: int
    status: str
    duplicate: bool
    degraded: bool
    position: int  # in the event log: read your own write with ?min_position=


@dataclass(frozen=True)
class Answer:
    version: int
    status: str
    duplicate: bool


Decision = tuple[Order | None, list[Answer], Exception | None]


class Answerable(Protocol):
    """A concurrent.futures.Future or an asyncio.Future: answered on the thread (or loop) that waits for it."""

    def set_result(self, result: Recorded, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...

    def done(self) -> bool: ...


@dataclass
class Pending:
    item: Verified
    future: Answerable
    deadline: float  # monotonic: give up waiting for a busy lock after this
    order_id: UUID = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        notice = self.item.notice
        self.order_id = Order.create_id(notice.app_id, notice.out_trade_no, notice.merchant)
        self.key = lock_key(notice.app_id, notice.out_trade_no, notice.merchant)


class Batches(ABC):
    """What every driver of the group commit shares: how one batch is locked, decided, saved and answered.
    The driver supplies the batches, and the I/O as coroutines (`_swap`, `_load`, `_save`, `_head`, `_aside`)."""

    def __init__(self, store: LedgerStore, *, require_known_orders: bool, wait_seconds: float, metrics: Metrics,
                 max_batch: int = 500, retry_busy_seconds: float = 0.005, max_copies: int = DEFAULT_MAX_COPIES) -> None:
        self.store, self.metrics, self.max_copies = store, metrics, max_copies
        self.require_known_orders = require_known_orders
        self.wait_seconds, self.max_batch, self.retry_busy_seconds = wait_seconds, max_batch, retry_busy_seconds
        self._held: ManyHold | None = None  # the last batch's locks, until the next batch takes its own

    @abstractmethod
    async def _swap(self, keys: set[str], release: ManyHold | None) -> ManyHold:
        ...

    @abstractmethod
    async def _load(self, order_ids: list[UUID]) -> dict[UUID, Order | None]:
        ...

    @abstractmethod
    async def _save(self, orders: list[Order]) -> int:
        """Every pending event of `orders` in one transaction; the log position of the last."""
        ...

    @abstractmethod
    async def _head(self) -> int:
        ...

    @abstractmethod
    async def _aside(self, call: Callable[..., T], *args: Any) -> T:
        """A blocking call on the store (the rare paths): where it may block the driver."""
        ...

    async def _commit(self, batch: list[Pending], busy: list[Pending]) -> None:
        groups: dict[UUID, list[Pending]] = {}
        for pending in batch:
            groups.setdefault(pending.order_id, []).append(pending)
        self.metrics.batch_size.observe(len(batch))
        waiting = time.monotonic()
        # The last batch's locks are handed back in the same round trip: they were kept until now.
        held, self._held = await self._swap({group[0].key for group in groups.values()}, self._held), None
        self.metrics.lock_wait.observe(time.monotonic() - waiting)
        try:
            for order_id, group in list(groups.items()):
                if group[0].key in held.busy:
                    del groups[order_id]
                    self._defer(group, busy)
            if groups:
                await self._save_groups(groups, degraded=held.degraded)
        except BaseException:
            await self._swap(set(), held)
            raise
        self._held = held  # released with the next batch's, or as soon as none comes

    def _defer(self, group: list[Pending], busy: list[Pending]) -> None:
        now = time.monotonic()
        for pending in group:
            if now < pending.deadline:
                busy.append(pending)
            else:
                fail_all((pending,), LockTimeout(f"order {pending.key!r} stayed locked for more than "
                                              f"{self.wait_seconds} s"))

    async def _save_groups(self, groups: dict[UUID, list[Pending]], *, degraded: bool) -> None:
        try:
            orders = await self._load(list(groups))
            loaded = {order_id: order.version if order else 0 for order_id, order in orders.items()}
            decided = [self._decide(orders[order_id], group) for order_id, group in groups.items()]
            # An order may have nothing new: every callback of its group was a copy beyond the cap.
            changed = [order for order, _, _ in decided if order is not None and order.pending_events]
            position = await self._save(changed) if changed else await self._head()
        except IntegrityError:
            self.metrics.version_conflicts.inc()
            if not await self._aside(self._batch_committed_anyway, changed, loaded, groups):
                log.info("a batch of %d orders met the version check: redoing it order by order", len(groups))
                for group in groups.values():
                    try:
                        alone, answers, position = await self._aside(self._save_alone, group)
                    except Exception as exc:  # UnknownOrder, RetryLater, or a bug deciding this one order
                        fail_all(group, exc)
                    else:
                        _answer(group, alone, answers, None, position, degraded)
                return
            position = await self._aside(self.store.ping)
        except PersistenceError as exc:
            fail_all((p for group in groups.values() for p in group), StorageUnavailable(
                f"event store unavailable: {exc}"))
            return
        for (order, answers, refused), group in zip(decided, groups.values(), strict=True):
            _answer(group, order, answers, refused, position, degraded)

    def _save_alone(self, group: list[Pending]) -> tuple[Order, list[Answer], int]:
        """One order's callbacks on their own: reload and decide again until the version check passes."""
        answers: list[Answer] = []

        def decide(order: Order) -> None:
            _, decided, refused = self._decide(order, group)
            if refused is not None:
                raise refused
            answers[:] = decided

        notice = group[0].item.notice
        order, position = save_with_retries(
            self.store, self.metrics, group[0].order_id, decide,
            create=lambda: Order(app_id=notice.app_id, out_trade_no=notice.out_trade_no, merchant=notice.merchant))
        return order, answers, position

    def _decide(self, order: Order | None, group: list[Pending]) -> Decision:
        """Apply the group's callbacks in arrival order: the order to save (None: nothing to save), what to
        answer each callback, or why the whole group is refused (its order is then left unsaved)."""
        notice = group[0].item.notice
        if self.require_known_orders and (order is None or not order.registered):
            return None, [], UnknownOrder(f"order {notice.out_trade_no} is not registered")
        if order is None:
            order = Order(app_id=notice.app_id, out_trade_no=notice.out_trade_no, merchant=notice.merchant)
        answers = []
        try:
            for pending in group:
                item = pending.item
                if not order.receive(item.notice, item.params, delivery_id=item.delivery_id,
                                     received_at=item.received_at, remote_addr=item.remote_addr,
                                     max_copies=self.max_copies):
                    self.metrics.copies_not_recorded.inc()
                answers.append(Answer(order.version, order.status.value,
                                      order.deliveries[item.notice.notify_id] > 1))
        except Exception as exc:  # a bug in one order must not fail the batch
            log.exception("could not decide callbacks for order %s", notice.out_trade_no)
            return None, [], exc
        return order, answers, None

    def _batch_committed_anyway(self, changed: list[Order], loaded: dict[UUID, int],
                                groups: dict[UUID, list[Pending]]) -> bool:
        """One transaction: all of the batch is there, or none of it. Ask one of its orders."""
        try:
            first = changed[0].id
            return committed_anyway(self.store, first, loaded[first], {p.item.delivery_id for p in groups[first]})
        except PersistenceError:
            return False


class GroupCommit(Batches):
    """The driver for callers on any thread (and the embedded mode): one thread takes the batches and calls
    the store and the lock directly, on a private event loop that only runs the shared coroutines."""

    def __init__(self, store: LedgerStore, lock: OrderLock, **options: Any) -> None:
        super().__init__(store, **options)
        self.lock = lock
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        # One thread: two measured no faster (1,043-1,115 against 1,144-1,204 req/s, alternating runs).
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._closed = False

    def submit(self, item: Verified) -> Future[Recorded]:
        """Queue one callback; the future is answered after the commit that holds it (or with the error)."""
        future: Future[Recorded] = Future()
        with self._state:
            if self._closed:
                future.set_exception(StorageUnavailable("the ledger is shutting down"))
                return future
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.put(Pending(item, future, time.monotonic() + self.wait_seconds))
        return future

    def close(self) -> None:
        """Commit what was queued before, refuse what comes after."""
        with self._state:
            self._closed = True
            if self._thread is not None:
                self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
        # The thread took the stop mark; whatever is left came after it (or the thread hung).
        fail_all(iter_queue(self._queue), StorageUnavailable("the ledger is shutting down"))

    async def _swap(self, keys: set[str], release: ManyHold | None) -> ManyHold:
        return self.lock.take_many(keys, release=release)

    async def _load(self, order_ids: list[UUID]) -> dict[UUID, Order | None]:
        return self.store.get_orders(order_ids)

    async def _save(self, orders: list[Order]) -> int:
        return self.store.save(*orders)[-1].notification.id

    async def _head(self) -> int:
        return self.store.ping()

    async def _aside(self, call: Callable[..., T], *args: Any) -> T:
        return call(*args)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        stopping, busy = False, list[Pending]()  # busy: their lock was held elsewhere; they join the next batch
        try:
            while not stopping:
                batch, stopping = self._take(busy)
                busy = []
                if batch:
                    try:
                        loop.run_until_complete(self._commit(batch, busy))
                    except BaseException as exc:  # never leave a caller waiting for ever
                        log.exception("group commit failed")
                        fail_all(batch, StorageUnavailable(f"could not record: {exc!r}"))
            self._release()
        finally:
            loop.close()
        fail_all(busy, StorageUnavailable("the ledger is shutting down"))

    def _take(self, busy: list[Pending]) -> tuple[list[Pending], bool]:
        """Everything queued now (waiting for the first one), plus the orders that were busy last time;
        and whether to stop after this batch."""
        batch = list(busy)
        if self._queue.empty():  # nothing to hand the last batch's locks back with: release them now
            self._release()
        try:
            first = self._queue.get(timeout=self.retry_busy_seconds if batch else None)
        except queue.Empty:
            return batch, False
        if first is None:
            return batch, True
        batch.append(first)
        while len(batch) < self.max_batch:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is None:
                return batch, True
            batch.append(pending)
        return batch, False

    def _release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self.lock.release_many(held)


def _answer(group: list[Pending], order: Order | None, answers: list[Answer],
            refused: Exception | None, position: int, degraded: bool) -> None:
    if refused is not None or order is None:
        return fail_all(group, refused or StorageUnavailable("nothing was decided"))
    for pending, answer in zip(group, answers, strict=True):
        if pending.future.done():  # its caller gave up waiting (an asyncio future cancelled)
            continue
        pending.future.set_result(Recorded(order.id, pending.item.notice.out_trade_no, answer.version,
                                           answer.status, duplicate=answer.duplicate, degraded=degraded,
                                           position=position))


def fail_all(pendings: Iterable[Pending], exc: Exception) -> None:
    for pending in pendings:
        if not pending.future.done():
            pending.future.set_exception(exc)


def iter_queue(pending: queue.SimpleQueue[Pending | None]) -> Iterator[Pending]:
    while True:
        try:
            item = pending.get_nowait()
        except queue.Empty:
            return
        if item is not None:
            yield item
