"""The PostgreSQL recorder's own insert (one round trip): ids in commit order, all or nothing on a conflict,
and a connection left clean for the next caller."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg.pq import TransactionStatus

from ledger.pgrecorder import FailFastPostgresRecorder
from ledger.store import LedgerStore, persistence_env

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
