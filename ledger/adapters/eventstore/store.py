"""The event store: an eventsourcing Application whose persistence is chosen by the database URL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.persistence import Recording, StoredEvent, Transcoder
from eventsourcing.utils import Environment, EnvType

from ledger.adapters.eventstore.transcoder import OrjsonTranscoder
from ledger.domain.order import Order

SCHEMES = ("sqlite", "postgresql", "postgres", "memory")


def persistence_env(database_url: str, *, create_table: bool = True, pool_size: int = 10,
                    max_overflow: int = 30) -> dict[str, str]:
    """Translate `LEDGER_DATABASE_URL` into eventsourcing's settings; raises ValueError when it can't."""
    parts = urlsplit(database_url)
    create = "y" if create_table else "n"
    if parts.scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if parts.scheme == "sqlite":
        path = database_url[len("sqlite:///"):] if database_url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"a SQLite URL looks like sqlite:///ledger.db, not {database_url!r}")
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "10", "CREATE_TABLE": create}
    if parts.scheme in ("postgresql", "postgres"):
        dbname = parts.path.lstrip("/")
        if not (parts.hostname and dbname):
            raise ValueError("a PostgreSQL URL looks like postgresql://user:pass@host:5432/dbname")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            # A stall must surface in seconds as a 503, not hang Alipay's request.
            "POSTGRES_CONNECT_TIMEOUT": "2",
            "APPLICATION_RECORDER_TOPIC": "ledger.adapters.eventstore.postgres:FailFastPostgresRecorder",
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_PRE_PING": "y",
            # At least as many connections as threads that call the store (Starlette's pool is 40).
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(max_overflow),
            "CREATE_TABLE": create,
        }
    raise ValueError(f"unknown database URL scheme {parts.scheme!r}: use sqlite:///FILE or "
                     "postgresql://user:pass@host:port/db")


class LedgerStore(Application[UUID]):
    """Holds every order stream; PostgreSQL tables are named `ledger_events` and so on."""

    name = "ledger"

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # Settings are read once by ledger.config; never pick up stray variables from os.environ.
        return Environment(name, dict(env or {}))

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """`Application.save()`, with a short cut for orders alone (the group commit's every batch): their
        pending events go straight into the event store, in one transaction, as `save()` does. What it
        skips: two runtime-Protocol isinstance checks per object, which Python 3.11 answers slowly (12 %
        of the group commit thread's CPU), and the aggregate cache and snapshots, which the ledger does
        not use (if they are ever turned on, the library's own path is taken)."""
        if kwargs or self.repository.cache or self.snapshots or any(type(obj) is not Order for obj in objs):
            return super().save(*objs, **kwargs)
        return self.events.put([event for order in objs for event in order.collect_events()])

    def get_order(self, order_id: UUID) -> Order | None:
        try:
            return self.repository.get(order_id)
        except AggregateNotFoundError:
            return None

    def get_orders(self, order_ids: Sequence[UUID]) -> dict[UUID, Order | None]:
        """Many orders at once: one query on PostgreSQL, one read per order elsewhere (local and fast)."""
        select_streams = getattr(self.recorder, "select_streams", None)
        if select_streams is None:
            return {order_id: self.get_order(order_id) for order_id in order_ids}
        return self.orders_from(select_streams(order_ids))

    def orders_from(self, streams: dict[UUID, list[StoredEvent]]) -> dict[UUID, Order | None]:
        """Orders from their streams' stored events, as loaded by `select_streams` (None: no such order)."""
        to_event = self.mapper.to_domain_event
        return {order_id: project_aggregate(None, map(to_event, stored)) for order_id, stored in streams.items()}

    def stored_events(self, orders: Sequence[Order]) -> list[StoredEvent]:
        """The orders' pending events, collected and mapped for the recorder (as `save()` does)."""
        to_stored = self.mapper.to_stored_event
        return [to_stored(event) for order in orders for event in order.collect_events()]

    def ping(self) -> int:
        """One round trip to the database: the head of the log."""
        return self.recorder.max_notification_id() or 0
