"""SQLAlchemy engines for the ledger's own tables, from the same `LEDGER_DATABASE_URL` as the event store."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


def sqlalchemy_url(database_url: str) -> str:
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url


def make_engine(database_url: str) -> sa.Engine:
    url = sqlalchemy_url(database_url)
    # A failed statement's error names its SQL, never its parameters: they hold buyers' data (buyer_id, the
    # notification's fields), and the error text is logged and served (the projections' last_error).
    if url.startswith("sqlite"):
        # The event store writes the same file from other connections: wait for its locks, don't fail.
        return sa.create_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
    return sa.create_engine(url, pool_size=4, max_overflow=8, pool_pre_ping=True,
                            connect_args={"connect_timeout": 5}, hide_parameters=True)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A moment stored as UTC and read back timezone-aware, on PostgreSQL and on SQLite alike.

    SQLite keeps a DateTime as wall-clock text and drops the offset: without this, a time written in
    China Standard Time would read back eight hours off.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("store timezone-aware datetimes only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
