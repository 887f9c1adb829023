"""Bring a database to the code's schema: Alembic for the ledger's tables, eventsourcing for its own.

Several `ledger serve` processes may start together on one PostgreSQL: an advisory lock lets one migrate
while the others wait, since concurrent `CREATE TABLE IF NOT EXISTS` can still collide in PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.sql.engine import make_engine

SCRIPT_LOCATION = Path(__file__).resolve().parents[3] / "alembic"
MIGRATION_LOCK = 7_424_242_001


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                conn.execute(sa.text("select pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
            try:
                command.upgrade(alembic_config(conn), revision)
                conn.commit()
                if database_url.startswith(("sqlite", "postgres")):
                    LedgerStore(env=persistence_env(database_url, create_table=True, pool_size=1,
                                                    max_overflow=0)).close()
            finally:
                if postgres:
                    conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                    conn.commit()
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str = "base") -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), revision)
            conn.commit()
    finally:
        engine.dispose()


def pending(database_url: str) -> bool:
    """True when the database's schema is behind the code's migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() != head
    finally:
        engine.dispose()
