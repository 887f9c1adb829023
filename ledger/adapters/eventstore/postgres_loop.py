"""The group commit's three statements on PostgreSQL, awaited on the serving event loop.

The same SQL as `FailFastPostgresRecorder` (load many streams, insert a batch under the table lock with
NOTIFY, read the head of the log), on one `psycopg.AsyncConnection` of the loop's own: no thread is woken
and no GIL handed over per batch. psycopg's errors become eventsourcing's (`persistence_error`, the
recorder's module), and a dead connection is replaced and the call tried once more, with the recorder's
policy (`RETRIED`, `WAIT_SECONDS`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import StoredEvent
from psycopg.pq import TransactionStatus
from psycopg.sql import SQL, Identifier

from ledger.adapters.eventstore.postgres import RETRIED, WAIT_SECONDS, FailFastPostgresRecorder, persistence_error

T = TypeVar("T")

class AsyncEventWriter:
    """Used by one task at a time (the group commit's), on the loop that first called it."""

    def __init__(self, recorder: FailFastPostgresRecorder, *, connect_timeout: float = 2.0) -> None:
        self.recorder = recorder
        self.connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def select_streams(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        async def select(conn: psycopg.AsyncConnection[Any]) -> dict[UUID, list[StoredEvent]]:
            streams: dict[UUID, list[StoredEvent]] = {originator_id: [] for originator_id in originator_ids}
            cursor = await conn.execute(self.recorder.select_streams_statement, (list(originator_ids),),
                                        prepare=True)
            for originator_id, version, topic, state in await cursor.fetchall():
                streams[originator_id].append(StoredEvent(originator_id, version, topic, bytes(state)))
            return streams

        return await self._twice(select)

    async def insert_events(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        """One round trip, BEGIN to COMMIT, as `FailFastPostgresRecorder.insert_events`: the notification ids."""
        recorder = self.recorder

        async def insert(conn: psycopg.AsyncConnection[Any]) -> list[int]:
            async with conn.cursor() as curs:
                try:
                    async with conn.pipeline():
                        await curs.execute(b"BEGIN")
                        for statement in recorder.lock_table_statements:
                            await curs.execute(statement, prepare=True)
                        await curs.execute(SQL("NOTIFY {0}").format(Identifier(recorder.channel_name)))
                        await curs.execute(recorder.insert_statement, recorder.insert_params(stored_events),
                                           prepare=True)
                        await conn.execute(b"COMMIT")
                except BaseException:
                    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                        await conn.execute(b"ROLLBACK")  # the refused statement left the transaction open
                    raise
                return [row[0] for row in await curs.fetchall()]

        return await self._twice(insert)

    async def max_notification_id(self) -> int:
        async def head(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute(self.recorder.max_notification_id_statement, prepare=True)
            row = await cursor.fetchone()
            return int(row[0] or 0) if row else 0

        return await self._twice(head)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _twice(self, call: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        try:
            return await self._translated(call)
        except RETRIED:  # as the recorder's `_twice`: a fresh connection, once
            await self.close()
            await asyncio.sleep(WAIT_SECONDS)
            return await self._translated(call)

    async def _translated(self, call: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        try:
            return await call(await self._connection())
        except psycopg.Error as exc:
            if self._conn is not None and self._conn.closed:
                self._conn = None
            raise persistence_error(exc) from exc
        except TimeoutError as exc:
            raise persistence.OperationalError(f"no connection within {self.connect_timeout} s") from exc

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            datastore = self.recorder.datastore
            kwargs = datastore.pool.kwargs
            params = {k: v for k, v in (kwargs() if callable(kwargs) else kwargs or {}).items() if k != "row_factory"}
            conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(
                autocommit=True, connect_timeout=max(1, round(self.connect_timeout)), **params),
                self.connect_timeout)
            idle = int(datastore.idle_in_transaction_session_timeout * 1000)
            await conn.execute(SQL("SET idle_in_transaction_session_timeout = '{0}ms'").format(idle))
            self._conn = conn
        return self._conn
