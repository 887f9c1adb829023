"""The PostgreSQL event recorder with a retry policy that gives up in seconds, not a minute.

eventsourcing retries a failed database call 10 times, each waiting up to POSTGRES_CONNECT_TIMEOUT for a
pooled connection: with the database gone, one notification would hang for about a minute. Alipay only
needs to hear `fail` so that it comes back; two attempts keep a dropped connection survivable.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

ATTEMPTS, WAIT_SECONDS = 2, 0.2


def _bounded(method: object) -> object:
    return retry((InterfaceError, OperationalError), max_attempts=ATTEMPTS, wait=WAIT_SECONDS)(
        method.__wrapped__)  # type: ignore[attr-defined]


class FailFastPostgresRecorder(PostgresApplicationRecorder):
    insert_events = _bounded(PostgresApplicationRecorder.insert_events)  # type: ignore[assignment]
    select_events = _bounded(PostgresApplicationRecorder.select_events)  # type: ignore[assignment]
    select_notifications = _bounded(PostgresApplicationRecorder.select_notifications)  # type: ignore[assignment]
    max_notification_id = _bounded(PostgresApplicationRecorder.max_notification_id)  # type: ignore[assignment]

    @retry((InterfaceError, OperationalError), max_attempts=ATTEMPTS, wait=WAIT_SECONDS)
    def select_streams(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The events of many streams in one round trip (a group commit loads its whole batch at once)."""
        statement = SQL("SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                        "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version").format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        streams: dict[UUID, list[StoredEvent]] = {originator_id: [] for originator_id in originator_ids}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            for row in curs.fetchall():
                streams[row["originator_id"]].append(StoredEvent(
                    originator_id=row["originator_id"], originator_version=row["originator_version"],
                    topic=row["topic"], state=bytes(row["state"])))
        return streams
