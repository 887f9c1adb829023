"""The group commit's I/O on an event loop, one object per loop: `StoreIO` calls the sync store through a
thread (SQLite, the embedded default, and the in-memory store); `PostgresIO` awaits PostgreSQL on a
connection of the loop's own, with no thread woken per batch. Both take the locks through the lock's
`on_loop()` (the in-process lock directly, Redis with an asyncio client of the loop's own).

The composition root (ledger.bootstrap) chooses one; tests wrap either to pause, fail or count a step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from ledger.adapters.eventstore.postgres import FailFastPostgresRecorder
from ledger.adapters.eventstore.postgres_loop import AsyncEventWriter
from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks.holds import ManyHold
from ledger.domain.order import Order
from ledger.service.ports import OrderLock

T = TypeVar("T")


class StoreIO:
    def __init__(self, store: LedgerStore, lock: OrderLock) -> None:
        self.store, self.lock = store, lock.on_loop()

    async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
        return await self.lock.take_many(keys, release=release)

    async def load(self, order_ids: list[UUID]) -> dict[UUID, Order | None]:
        return await asyncio.to_thread(self.store.get_orders, order_ids)

    async def save(self, orders: list[Order]) -> int:
        return await asyncio.to_thread(lambda: self.store.save(*orders)[-1].notification.id)

    async def log_head(self) -> int:
        return await asyncio.to_thread(self.store.ping)

    async def run_blocking(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def close(self) -> None:
        await self.lock.close()


class PostgresIO(StoreIO):
    """Loads, saves and reads the head on the loop's own connection; the rare paths still use the pool's."""

    def __init__(self, store: LedgerStore, lock: OrderLock) -> None:
        super().__init__(store, lock)
        assert isinstance(store.recorder, FailFastPostgresRecorder)
        self.writer = AsyncEventWriter(store.recorder)

    async def load(self, order_ids: list[UUID]) -> dict[UUID, Order | None]:
        return self.store.orders_from(await self.writer.select_streams(order_ids))

    async def save(self, orders: list[Order]) -> int:
        return (await self.writer.insert_events(self.store.stored_events(orders)))[-1]

    async def log_head(self) -> int:
        return await self.writer.max_notification_id()

    async def close(self) -> None:
        try:
            await self.writer.close()
        finally:
            await super().close()
