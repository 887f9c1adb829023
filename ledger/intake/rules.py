"""How one batch of the group commit is locked, decided, saved and answered: the rules, on an I/O object.

Every order of the batch is locked in one round trip (handing back the last batch's locks in the same
one), loaded in one query, each callback applied to its order in arrival order, and every changed order
saved in one transaction. An order whose lock another process holds waits for a later batch (or, past its
deadline, is answered LockTimeout). When the version check refuses the batch, either the commit went
through after all (the library retried a commit whose answer was lost) or another writer got in first:
then each order is redone alone, so one conflicting order fails no other.

`BatchRules.commit` returns what it decided (`Decided`) and answers no one: the driver does
(ledger.intake.loop). Its I/O (`BatchIO`, ledger.intake.io) is an object with public methods, which tests
wrap to pause, fail or count a step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks.holds import ManyHold, lock_key
from ledger.adapters.metrics import Metrics
from ledger.domain.errors import LockTimeout, StorageUnavailable, UnknownOrder
from ledger.domain.order import DEFAULT_MAX_COPIES, Order
from ledger.service.ports import Recorded, Verified
from ledger.service.saving import committed_anyway, save_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")


class BatchIO(Protocol):
    """What the rules ask of the outside, each awaited on the driver's event loop."""

    async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
        """Hand back `release` and take every free key of `keys`, without waiting for busy ones."""
        ...

    async def load(self, order_ids: list[UUID]) -> dict[UUID, Order | None]: ...

    async def save(self, orders: list[Order]) -> int:
        """Every pending event of `orders` in one transaction; the log position of the last."""
        ...

    async def log_head(self) -> int: ...

    async def run_blocking(self, call: Callable[..., T], *args: Any) -> T:
        """A blocking call on the sync store (the rare paths), where it cannot hold up the loop."""
        ...

    async def close(self) -> None: ...


@dataclass
class Pending:
    item: Verified
    deadline: float  # monotonic: give up waiting for a busy lock after this
    order_id: UUID = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        notice = self.item.notice
        self.order_id = Order.create_id(notice.app_id, notice.out_trade_no, notice.merchant)
        self.key = lock_key(notice.app_id, notice.out_trade_no, notice.merchant)


Answer = Recorded | Exception


@dataclass(frozen=True)
class Step:
    """How one callback left its order, as it was applied."""

    version: int
    status: str
    duplicate: bool


Decision = tuple[Order, list[Step]] | Exception  # the order to save and each callback's step, or why not


@dataclass
class Decided:
    """What a batch came to: the answer to each callback it settled (a Recorded, or the error to raise),
    and the callbacks whose order was locked elsewhere, to try again with the next batch."""

    answers: list[tuple[Pending, Answer]] = field(default_factory=list)
    busy: list[Pending] = field(default_factory=list)


class BatchRules:
    def __init__(self, io: BatchIO, store: LedgerStore, *, require_known_orders: bool, wait_seconds: float,
                 metrics: Metrics, max_copies: int = DEFAULT_MAX_COPIES) -> None:
        """`store`: the sync store, for the rare paths (through `io.run_blocking`)."""
        self.io, self.store, self.metrics, self.max_copies = io, store, metrics, max_copies
        self.require_known_orders, self.wait_seconds = require_known_orders, wait_seconds
        self._held: ManyHold | None = None  # the last batch's locks, until the next batch takes its own

    async def commit(self, batch: list[Pending]) -> Decided:
        groups: dict[UUID, list[Pending]] = {}
        for pending in batch:
            groups.setdefault(pending.order_id, []).append(pending)
        self.metrics.batch_size.observe(len(batch))
        waiting = time.monotonic()
        # The last batch's locks are handed back in the same round trip: they were kept until now.
        held, self._held = await self.io.swap_locks({group[0].key for group in groups.values()}, self._held), None
        self.metrics.lock_wait.observe(time.monotonic() - waiting)
        decided = Decided()
        try:
            for order_id, group in list(groups.items()):
                if group[0].key in held.busy:
                    del groups[order_id]
                    self._defer(group, decided)
            if groups:
                decided.answers += await self._save(groups, degraded=held.degraded)
        except BaseException:
            await self.io.swap_locks(set(), held)
            raise
        self._held = held  # handed back with the next batch's, or by `release` as soon as none comes
        return decided

    async def release(self) -> None:
        """Hand back the last batch's locks now (nothing is queued to hand them back with)."""
        if self._held is not None:
            held, self._held = self._held, None
            if held.held:
                await self.io.swap_locks(set(), held)

    def _defer(self, group: list[Pending], decided: Decided) -> None:
        now = time.monotonic()
        for pending in group:
            if now < pending.deadline:
                decided.busy.append(pending)
            else:
                decided.answers.append((pending, LockTimeout(
                    f"order {pending.key!r} stayed locked for more than {self.wait_seconds} s")))

    async def _save(self, groups: dict[UUID, list[Pending]], *, degraded: bool) -> list[tuple[Pending, Answer]]:
        """Load, decide and save every group at once; on a conflict, whatever `_after_conflict` finds."""
        try:
            orders = await self.io.load(list(groups))
        except PersistenceError as exc:
            return _all(groups, StorageUnavailable(f"event store unavailable: {exc}"))
        loaded = {order_id: order.version if order else 0 for order_id, order in orders.items()}
        decided = {order_id: self._decide(orders[order_id], group) for order_id, group in groups.items()}
        # An order may have nothing new: every callback of its group was a copy beyond the cap.
        changed = [d[0] for d in decided.values() if not isinstance(d, Exception) and d[0].pending_events]
        try:
            position = await self.io.save(changed) if changed else await self.io.log_head()
        except IntegrityError:
            self.metrics.version_conflicts.inc()
            if not await self.io.run_blocking(self._batch_committed_anyway, changed, loaded, groups):
                return await self._redo_alone(groups, degraded)
            position = await self.io.log_head()
        except PersistenceError as exc:
            return _all(groups, StorageUnavailable(f"event store unavailable: {exc}"))
        return [(pending, answer) for order_id, group in groups.items()
                for pending, answer in zip(group, _answers(decided[order_id], group, position, degraded),
                                           strict=True)]

    async def _redo_alone(self, groups: dict[UUID, list[Pending]], degraded: bool) -> list[tuple[Pending, Answer]]:
        """Another writer got in first: each order on its own, reloaded and decided again until it saves."""
        log.info("a batch of %d orders met the version check: redoing it order by order", len(groups))
        answers: list[tuple[Pending, Answer]] = []
        for group in groups.values():
            try:
                decision, position = await self.io.run_blocking(self._save_alone, group)
            except Exception as exc:  # UnknownOrder, RetryLater, or a bug deciding this one order
                decision, position = exc, 0
            answers += zip(group, _answers(decision, group, position, degraded), strict=True)
        return answers

    def _save_alone(self, group: list[Pending]) -> tuple[Decision, int]:
        def decide(order: Order) -> Decision:
            if isinstance(decision := self._decide(order, group), Exception):
                raise decision
            return decision

        notice = group[0].item.notice
        saved = save_with_retries(self.store, group[0].order_id, decide, metrics=self.metrics, create=lambda: Order(
            app_id=notice.app_id, out_trade_no=notice.out_trade_no, merchant=notice.merchant))
        assert saved is not None  # there is a `create`
        return saved.decision, saved.position

    def _decide(self, order: Order | None, group: list[Pending]) -> Decision:
        """Apply the group's callbacks in arrival order: the order to save and how each callback left it,
        or why the whole group is refused (its order is then left unsaved)."""
        notice = group[0].item.notice
        if self.require_known_orders and (order is None or not order.registered):
            return UnknownOrder(f"order {notice.out_trade_no} is not registered")
        if order is None:
            order = Order(app_id=notice.app_id, out_trade_no=notice.out_trade_no, merchant=notice.merchant)
        steps = []
        try:
            for pending in group:
                item = pending.item
                if not order.receive(item.notice, item.params, delivery_id=item.delivery_id,
                                     received_at=item.received_at, remote_addr=item.remote_addr,
                                     max_copies=self.max_copies, key=item.key):
                    self.metrics.copies_not_recorded.inc()
                steps.append(Step(order.version, order.status.value, order.deliveries[item.notice.notify_id] > 1))
        except Exception as exc:  # a bug in one order must not fail the batch
            log.exception("could not decide callbacks for order %s", notice.out_trade_no)
            return exc
        return order, steps

    def _batch_committed_anyway(self, changed: list[Order], loaded: dict[UUID, int],
                                groups: dict[UUID, list[Pending]]) -> bool:
        """One transaction: all of the batch is there, or none of it. Ask one of its orders."""
        try:
            first = changed[0].id
            return committed_anyway(self.store, first, loaded[first], {p.item.delivery_id for p in groups[first]})
        except PersistenceError:
            return False


def _answers(decision: Decision, group: list[Pending], position: int, degraded: bool) -> list[Answer]:
    """What to tell each callback of a group, once its order is saved at `position` (or why not)."""
    if isinstance(decision, Exception):
        return [decision] * len(group)
    order, steps = decision
    return [Recorded(order.id, pending.item.notice.out_trade_no, step.version, step.status,
                     duplicate=step.duplicate, degraded=degraded, position=position)
            for pending, step in zip(group, steps, strict=True)]


def _all(groups: dict[UUID, list[Pending]], exc: Exception) -> list[tuple[Pending, Answer]]:
    return [(pending, exc) for group in groups.values() for pending in group]
