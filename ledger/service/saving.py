"""Decide and save one order until its stream's version check passes: the fence behind every lock.

A conflict (another writer appended first: a lock that expired, Redis down) reloads the order and runs
the decision again, a bounded number of times, with jitter so that colliding writers spread out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.metrics import Metrics
from ledger.domain.errors import StorageUnavailable, TooManyConflicts
from ledger.domain.order import Order

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


def save_with_retries(store: LedgerStore, metrics: Metrics, order_id: UUID, decide: Callable[[Order], None], *,
                      create: Callable[[], Order]) -> tuple[Order, int]:
    """Load (or `create`), `decide`, save; returns the order and a log position at or after its last event."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        try:
            order = store.get_order(order_id)
            loaded = order.version if order else 0
            if order is None:
                order = create()
            decide(order)
            pending = list(order.collect_events())
            if not pending:
                return order, store.ping()
            try:
                recordings = store.save(*pending)
                return order, recordings[-1].notification.id
            except IntegrityError:
                metrics.version_conflicts.inc()
                if committed_anyway(store, order_id, loaded, {getattr(e, "delivery_id", None) for e in pending}):
                    return order, store.ping()
                log.info("version conflict on order %s at version %s: deciding again", order_id, loaded)
        except PersistenceError as exc:
            raise StorageUnavailable(f"event store unavailable: {exc}") from exc
    raise TooManyConflicts(f"order {order_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def committed_anyway(store: LedgerStore, order_id: UUID, loaded: int, delivery_ids: set[str | None]) -> bool:
    """After a lost connection the library retries a commit that went through: the retry conflicts.

    A delivery is recognised by its delivery_id; other commands are idempotent and just decide again.
    """
    mine = delivery_ids - {None}
    return bool(mine) and any(getattr(e, "delivery_id", None) in mine for e in store.events.get(order_id, gt=loaded))
