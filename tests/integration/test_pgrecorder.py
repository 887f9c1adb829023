"""The PostgreSQL recorder's own insert (one round trip): ids in commit order, all or nothing on a conflict,
and a connection left clean for the next caller."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg.pq import TransactionStatus

from ledger.adapters.eventstore.postgres import FailFastPostgresRecorder
from ledger.adapters.eventstore.store import LedgerStore, persistence_env

pytestmark = pytest.mark.postgres


def event(stream: object, version: int) -> StoredEvent:
    return StoredEvent(originator_id=stream, originator_version=version, topic="t", state=b"\x00\xff{}")


def test_insert_is_atomic_returns_ids_in_order_and_leaves_the_connection_clean(postgres_url: str) -> None:
    store = LedgerStore(env=persistence_env(postgres_url, pool_size=1, max_overflow=0))
    try:
        recorder = store.recorder
        assert isinstance(recorder, FailFastPostgresRecorder)
        x, y = uuid4(), uuid4()
        ids = recorder.insert_events([event(x, 1), event(y, 1), event(x, 2)])
        assert ids is not None and len(ids) == 3 and list(ids) == sorted(ids)

        with pytest.raises(IntegrityError):  # y's version 1 is taken: none of the batch may stay
            recorder.insert_events([event(x, 3), event(y, 1)])
        assert [e.originator_version for e in recorder.select_events(x)] == [1, 2]
        with store.factory.datastore.get_connection() as conn:  # the pool's only connection
            assert conn.info.transaction_status == TransactionStatus.IDLE

        later = recorder.insert_events([event(x, 3)])
        assert later is not None and later[0] > ids[-1]
        stored = recorder.select_events(x)
        assert [(e.originator_version, e.state) for e in stored] == [(1, b"\x00\xff{}"), (2, b"\x00\xff{}"),
                                                                     (3, b"\x00\xff{}")]
        assert [n.id for n in recorder.select_notifications(1, 10)] == [*ids, later[0]]
    finally:
        store.close()


def test_a_recently_lent_connection_is_not_pinged_until_a_call_fails_then_every_one_is(postgres_url: str) -> None:
    import psycopg

    store = LedgerStore(env=persistence_env(postgres_url, pool_size=2, max_overflow=0))
    try:
        recorder = store.recorder
        assert isinstance(recorder, FailFastPostgresRecorder)
        pinger = recorder.ping_when_lent
        pinger.rest_seconds = 60.0  # nothing rests long enough to be pinged for that
        datastore = store.factory.datastore
        with datastore.get_connection(), datastore.get_connection():  # both connections lent just now
            pass
        before = pinger.pings
        for _ in range(5):
            recorder.max_notification_id()
        assert pinger.pings == before  # lent again and again without a round trip to check them

        # The database restarts: every pooled connection is dead, though each was lent moments ago.
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        # The first call fails on a dead connection; its retry pings before lending, so the other dead
        # one is found and replaced instead of failing the call too.
        recorder.max_notification_id()
        assert pinger.pings > before
    finally:
        store.close()
