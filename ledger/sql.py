"""SQLAlchemy engines for the ledger's own tables, from the same `LEDGER_DATABASE_URL` as the event store."""

from __future__ import annotations

import sqlalchemy as sa


def sqlalchemy_url(database_url: str) -> str:
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url


def make_engine(database_url: str) -> sa.Engine:
    url = sqlalchemy_url(database_url)
    if url.startswith("sqlite"):
        # The event store writes the same file from other connections: wait for its locks, don't fail.
        return sa.create_engine(url, connect_args={"timeout": 10})
    return sa.create_engine(url, pool_size=4, max_overflow=8, pool_pre_ping=True,
                            connect_args={"connect_timeout": 5})
