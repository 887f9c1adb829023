"""Decide and save one order until its stream's version check passes: the fence behind every lock, and the
one reload-decide-save loop of every append outside the group commit's batches (operators' commands,
registrations, deliveries, messages of Alipay's message service, and a batch's order redone alone after a
conflict).

A conflict (another writer appended first: a lock that expired, Redis down) reloads the order and runs
the decision again, a bounded number of times, with jitter so that colliding writers spread out. Neither
`eventsourcing.utils.retry` (a fixed wait, within 5 %: writers that collided stay in step) nor tenacity
(a new dependency for these few lines) is used: what a conflict means (was it our own commit, retried by
the library after a lost connection?) is asked here between attempts, which is most of the loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.metrics import Metrics
from ledger.domain.errors import StorageUnavailable, TooManyConflicts

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Saved(Generic[A, T]):
    order: A  # an Order, or another aggregate saved the same way (ledger.domain.message.AppMessage)
    decision: T  # what `decide` returned, on the state that was saved
    position: int  # a log position at or after the order's last event


def save_with_retries(store: LedgerStore, order_id: UUID, decide: Callable[[A], T], *,
                      create: Callable[[], A] | None = None, metrics: Metrics | None = None) -> Saved[A, T] | None:
    """Load the order (or `create` it; None if there is no such order and no `create`), `decide` on it, and
    save its new events; on a conflict, again on the newer state. Raises StorageUnavailable, TooManyConflicts,
    or what `decide` or `create` raise."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        try:
            try:
                order: A | None = store.repository.get(order_id)  # an Order unless the caller's types say so
            except AggregateNotFoundError:
                order = None
            loaded = order.version if order else 0
            if order is None:
                if create is None:
                    return None
                order = create()
            decision = decide(order)
            pending = list(order.collect_events())
            if not pending:
                return Saved(order, decision, store.ping())
            try:
                return Saved(order, decision, store.save(*pending)[-1].notification.id)
            except IntegrityError:
                if metrics is not None:
                    metrics.version_conflicts.inc()
                if committed_anyway(store, order_id, loaded, {_idempotency_key(e) for e in pending}):
                    return Saved(order, decision, store.ping())
                log.info("version conflict on order %s at version %s: deciding again", order_id, loaded)
        except PersistenceError as exc:
            raise StorageUnavailable(f"event store unavailable: {exc}") from exc
    raise TooManyConflicts(f"order {order_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def load(store: LedgerStore, aggregate_id: UUID, kind: type[A]) -> A | None:
    """The aggregate of that id if it is one of `kind`; None when there is none. Raises StorageUnavailable."""
    try:
        found: object = store.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return None
    except PersistenceError as exc:
        raise StorageUnavailable(f"event store unavailable: {exc}") from exc
    return found if isinstance(found, kind) else None


def _idempotency_key(event: object) -> str | None:
    # A callback's delivery, or a gateway answer (ledger.service.trade_query): each recorded once.
    return getattr(event, "delivery_id", None) or getattr(event, "answer_id", None) or None


def committed_anyway(store: LedgerStore, order_id: UUID, loaded: int, delivery_ids: set[str | None]) -> bool:
    """After a lost connection the library retries a commit that went through: the retry conflicts.

    A delivery is recognised by its delivery_id, a gateway answer by its answer_id; other commands are
    idempotent and just decide again.
    """
    mine = delivery_ids - {None}
    return bool(mine) and any(_idempotency_key(e) in mine for e in store.events.get(order_id, gt=loaded))
