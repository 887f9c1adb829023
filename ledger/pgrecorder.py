"""The PostgreSQL event recorder with a retry policy that gives up in seconds, not a minute.

eventsourcing retries a failed database call 10 times, each waiting up to POSTGRES_CONNECT_TIMEOUT for a
pooled connection: with the database gone, one notification would hang for about a minute. Alipay only
needs to hear `fail` so that it comes back; two attempts keep a dropped connection survivable.
"""

from __future__ import annotations

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry

ATTEMPTS, WAIT_SECONDS = 2, 0.2


def _bounded(method: object) -> object:
    return retry((InterfaceError, OperationalError), max_attempts=ATTEMPTS, wait=WAIT_SECONDS)(
        method.__wrapped__)  # type: ignore[attr-defined]


class FailFastPostgresRecorder(PostgresApplicationRecorder):
    insert_events = _bounded(PostgresApplicationRecorder.insert_events)  # type: ignore[assignment]
    select_events = _bounded(PostgresApplicationRecorder.select_events)  # type: ignore[assignment]
    select_notifications = _bounded(PostgresApplicationRecorder.select_notifications)  # type: ignore[assignment]
    max_notification_id = _bounded(PostgresApplicationRecorder.max_notification_id)  # type: ignore[assignment]
