"""Whether the database `LEDGER_DATABASE_URL` names is there, checked before a command uses it.

A PostgreSQL server down, or a database not created, is one sentence, not a driver's traceback. A SQLite
file is created by `ledger migrate` and `ledger serve` only: any other command run from another folder would
otherwise make an empty `ledger.db` there and then fail for want of its tables.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from ledger.adapters.sql.engine import make_engine


def database_problem(database_url: str, *, create: bool) -> str | None:
    """What is wrong with reaching the database (one line), or None. `create`: a missing SQLite file is fine."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url[len("sqlite:///"):])
        if not create and not path.exists():
            return (f"no SQLite database at {path.resolve()} (LEDGER_DATABASE_URL is {database_url}): "
                    "run `ledger migrate` there first, or point LEDGER_DATABASE_URL at the ledger's file")
        return None
    if not database_url.startswith(("postgresql://", "postgres://")):
        return None
    engine = make_engine(database_url)
    try:
        with engine.connect():
            return None
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
        return f"cannot connect to PostgreSQL at {_where(engine.url)}: {reason}"
    finally:
        engine.dispose()


def _where(url: sa.URL) -> str:
    """host:port/database, without the user's password."""
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
