"""What a PostgreSQL restart does to its clients, without restarting the shared server: every connection to
the test's database is ended by the server, while the server itself stays up and answers new ones."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import psycopg

from ledger.adapters.eventstore.store import LedgerStore


def end_every_connection(database_url: str) -> int:
    """End every other session of `database_url`'s database, as a restart does; returns how many."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


def fill_pool(store: LedgerStore) -> int:
    """Open every connection of the event store's pool at once and hand them back, so that all of them sit idle
    in the pool, each lent moments ago; returns how many (at least the pool's minimum size)."""
    datastore: Any = store.factory.datastore  # type: ignore[attr-defined]
    pool = datastore.pool
    with datastore.get_connection():  # opens the pool
        pass
    pool.wait(timeout=10)  # at least min_size open (one more if the first request had to wait for one)
    opened = pool.get_stats()["pool_size"]
    with ExitStack() as stack:
        lent = [stack.enter_context(datastore.get_connection()) for _ in range(opened)]
    assert pool.get_stats()["pool_available"] == len(lent)
    return len(lent)
