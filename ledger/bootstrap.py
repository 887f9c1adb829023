"""The composition root: the one place that builds every adapter from the settings and wires them.

Nothing connects to anything at import time; tests call `build(settings, lock=..., ...)` with twins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from ledger.domain.errors import LedgerError
from ledger.locks import LocalOrderLock, OrderLock, RedisOrderLock
from ledger.rejections import MemoryRejectionLog, RejectionLog, SqlRejectionLog
from ledger.service import LedgerService
from ledger.settings import Settings
from ledger.sql import make_engine
from ledger.store import LedgerStore, persistence_env
from projections import all_projections
from projections.runner import Follower, ProjectionRunner


@dataclass
class Ledger:
    settings: Settings
    store: LedgerStore
    lock: OrderLock
    rejections: RejectionLog
    service: LedgerService
    engine: sa.Engine | None = None
    runner: ProjectionRunner | None = None
    closers: list[Any] = field(default_factory=list)

    def follower(self, poll_seconds: float = 1.0, gather_seconds: float = 0.05) -> Follower:
        """A thread that keeps the projections caught up; the caller starts and stops it."""
        if self.runner is None:
            raise LedgerError("the in-memory store has no projections")
        url = str(self.settings.database_url)
        return Follower(self.runner, listen_url=url if url.startswith("postgres") else None,
                        channel=getattr(self.store.recorder, "channel_name", ""), poll_seconds=poll_seconds,
                        gather_seconds=gather_seconds)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build(settings: Settings, *, store: LedgerStore | None = None, lock: OrderLock | None = None,
          rejections: RejectionLog | None = None, **service_options: Any) -> Ledger:
    closers: list[Any] = []
    database_url = str(settings.database_url)
    if store is None:
        store = LedgerStore(env=persistence_env(database_url, create_table=database_url.startswith("memory")))
        closers.append(store.close)
    if lock is None:
        lock = _lock(settings, closers)
    engine = runner = None
    if not database_url.startswith("memory"):
        engine = make_engine(database_url)
        closers.append(engine.dispose)
        runner = ProjectionRunner(store, engine, all_projections())
    if rejections is None:
        rejections = (SqlRejectionLog(engine, size=settings.rejected_log_size) if engine
                      else MemoryRejectionLog(size=settings.rejected_log_size))
    service = LedgerService(store, lock, rejections, settings.apps,
                            require_known_orders=settings.require_known_orders, **service_options)
    return Ledger(settings, store, lock, rejections, service, engine, runner, closers)


def _lock(settings: Settings, closers: list[Any]) -> OrderLock:
    wait_seconds = settings.lock_wait_ms / 1000
    if settings.redis_url is None:
        return LocalOrderLock(wait_seconds=wait_seconds)
    # Short socket timeouts: an unreachable Redis must degrade the lock in well under a second.
    client = redis.Redis.from_url(str(settings.redis_url), socket_connect_timeout=0.5, socket_timeout=0.5,
                                  retry=Retry(NoBackoff(), 1))
    closers.append(client.close)
    return RedisOrderLock(client, prefix=settings.redis_prefix, ttl_seconds=settings.lock_ttl_seconds,
                          wait_seconds=wait_seconds)
