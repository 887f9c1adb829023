"""The PostgreSQL event recorder, tuned for the ledger: gives up in seconds, loads and inserts in bulk.

eventsourcing retries a failed database call 10 times, each waiting up to POSTGRES_CONNECT_TIMEOUT for a
pooled connection: with the database gone, one notification would hang for about a minute. Alipay only
needs to hear `fail` so that it comes back: we try twice.

Dead pooled connections are caught by the pool's pre-ping, but only where one can be dead: a connection
lent within the last second is lent again without a ping, unless a call failed since (then every
connection is pinged once more). As HikariCP does; a ping before every lend was two of a group commit's
five round trips. A restarted database leaves every pooled connection dead: the first lost connection (a
call or a ping that fails on it) drops all the dead idle ones at once, so the retry gets a fresh one.
psycopg_pool alone would find them one lend at a time, waiting 1 s then 2 s between them: a call gave up
after about 4 of 10.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import DatabaseError as PsycopgDatabaseError
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import ConnectionPool

WAIT_SECONDS = 0.2  # before the one retry of a call that lost its connection (or found none)
RETRIED = (InterfaceError, OperationalError)  # what a retry may cure: not a conflict, not a refused statement
F = TypeVar("F", bound=Callable[..., Any])

# psycopg's errors as eventsourcing's, as the library's recorder raises them. Its own mapping is written
# inline in `PostgresDatastore.get_connection`, around a pooled sync connection: the serving loop's async
# connection (postgres_loop.py) goes through this one.
_ERRORS: tuple[tuple[type[psycopg.Error], type[persistence.PersistenceError]], ...] = (
    (psycopg.InterfaceError, persistence.InterfaceError),
    (psycopg.OperationalError, persistence.OperationalError),
    (psycopg.DataError, persistence.DataError),
    (psycopg.IntegrityError, persistence.IntegrityError),
    (psycopg.InternalError, persistence.InternalError),
    (psycopg.ProgrammingError, persistence.ProgrammingError),
    (psycopg.NotSupportedError, persistence.NotSupportedError),
    (psycopg.DatabaseError, persistence.DatabaseError),
    (psycopg.Error, persistence.PersistenceError),
)


def persistence_error(exc: psycopg.Error) -> persistence.PersistenceError:
    return next(ours for theirs, ours in _ERRORS if isinstance(exc, theirs))(str(exc))


def _twice(method: F) -> F:
    inner = getattr(method, "__wrapped__", method)  # the library's own 10-attempt retry, taken off

    @functools.wraps(inner)
    def call(self: FailFastPostgresRecorder, *args: Any, **kwargs: Any) -> Any:
        try:
            return inner(self, *args, **kwargs)
        except RETRIED as exc:
            self.ping_when_lent.doubt()
            if _connection_lost(exc):
                self.ping_when_lent.drop_dead()
            time.sleep(WAIT_SECONDS)
            return inner(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def _connection_lost(exc: BaseException) -> bool:
    """Whether a failed call lost its connection (or found none), rather than having a statement refused on a
    live one (a lock timeout, a cancelled query, a deadlock: those leave the connection working)."""
    cause = exc.__cause__
    sqlstate = cause.sqlstate if isinstance(cause, PsycopgDatabaseError) else None
    return sqlstate is None or sqlstate.startswith(("08", "57P"))  # connection exception, server shut down


class PingWhenRested:
    """The pool's `check`: ping a connection before lending it if it rested more than `rest_seconds`, or
    if any call failed since it was last lent. A ping that fails makes the pool drop it and, through
    `drop_dead`, every other dead connection waiting in `pool`."""

    def __init__(self, rest_seconds: float = 1.0, *, pool: ConnectionPool[Any] | None = None) -> None:
        self.rest_seconds = rest_seconds
        self.pings = 0
        self.sweeps = 0
        self._lent: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._doubt_since = 0.0
        self._pool = weakref.ref(pool) if pool is not None else None  # the pool holds this: no cycle
        self._sweeping = threading.Lock()

    def __call__(self, conn: Any) -> None:
        now = time.monotonic()
        last = self._lent.get(conn)
        if last is None or now - last > self.rest_seconds or last <= self._doubt_since:
            self.pings += 1
            try:
                ConnectionPool.check_connection(conn)
            except Exception:
                self.doubt()
                self.drop_dead()
                raise
        self._lent[conn] = now

    def doubt(self) -> None:
        self._doubt_since = time.monotonic()

    def drop_dead(self) -> None:
        """Ping every idle connection of the pool now, and drop the dead ones: the pool opens new ones in their
        place at once (psycopg_pool's `check`). Another caller's sweep under way is as good as this one."""
        pool = self._pool() if self._pool is not None else None
        if pool is None or not self._sweeping.acquire(blocking=False):
            return
        try:
            self.sweeps += 1
            pool.check()
        finally:
            self._sweeping.release()


class FailFastPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool = self.datastore.pool
        self.ping_when_lent = PingWhenRested(pool=pool)
        if getattr(pool, "_check", None) is not None:  # pre-ping is on (psycopg_pool keeps `check` there)
            pool._check = self.ping_when_lent

    select_events = _twice(PostgresApplicationRecorder.select_events)
    select_notifications = _twice(PostgresApplicationRecorder.select_notifications)
    max_notification_id = _twice(PostgresApplicationRecorder.max_notification_id)

    @functools.cached_property
    def _table(self) -> Composed:
        return SQL("{schema}.{table}").format(schema=Identifier(self.datastore.schema),
                                              table=Identifier(self.events_table_name))

    @_twice
    def select_streams(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The events of many streams in one round trip (a group commit loads its whole batch at once)."""
        streams: dict[UUID, list[StoredEvent]] = {originator_id: [] for originator_id in originator_ids}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_streams_statement, (list(originator_ids),), prepare=True)
            for row in curs.fetchall():
                streams[row["originator_id"]].append(StoredEvent(
                    originator_id=row["originator_id"], originator_version=row["originator_version"],
                    topic=row["topic"], state=bytes(row["state"])))
        return streams

    @_twice
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's insert (table lock, NOTIFY, one INSERT returning the notification ids in order) in
        one round trip instead of three: BEGIN to COMMIT go out as one pipeline, the values as one binary
        array per column (psycopg dumps text arrays of bytea through a regex per element: six times slower).
        """
        if not stored_events:
            return []
        # After an error (a conflict, a lock timeout) the pool's connection block rolls the transaction back.
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            with conn.pipeline():
                curs.execute(b"BEGIN")
                self._lock_table(curs)
                self._notify_channel(curs)
                curs.execute(self.insert_statement, self.insert_params(stored_events), prepare=True)
                conn.execute(b"COMMIT")
            return [row["notification_id"] for row in curs.fetchall()]

    @functools.cached_property
    def select_streams_statement(self) -> Composed:
        return SQL("SELECT originator_id, originator_version, topic, state FROM {table} "
                   "WHERE originator_id = ANY(%b) ORDER BY originator_id, originator_version").format(table=self._table)

    @staticmethod
    def insert_params(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
        return ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
                [e.topic for e in stored_events], [e.state for e in stored_events])

    @functools.cached_property
    def insert_statement(self) -> Composed:
        return SQL("INSERT INTO {table} (originator_id, originator_version, topic, state) "
                   "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
                   "RETURNING notification_id").format(table=self._table)
