"""Per-test isolation on the shared servers: a database of its own, a Redis key prefix of its own."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from ledger.adapters.sql.migrations import migrate
from tests.support.services import POSTGRES_URL, redis_client


def create_database(admin_url: str = POSTGRES_URL) -> tuple[str, str]:
    """Create an empty database with a unique name; return its name and URL."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, urlsplit(admin_url)._replace(path=f"/{name}").geturl()


def drop_database(name: str, admin_url: str = POSTGRES_URL) -> None:
    # FORCE: a test that failed half-way may still hold connections (pools, threads) to it.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key starting with `prefix`, by SCAN so a busy shared Redis is never blocked."""
    client = redis_client(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


_MIGRATED: list[Path] = []  # the session's one SQLite database migrated to head, copied for every new one


def migrated(database_url: str) -> None:
    """Bring a test's database to the code's schema. A new SQLite file is a copy of one migrated once a session
    (the migrations took a third of a second each time, in several hundred tests); anything else is migrated."""
    path = Path(database_url.removeprefix("sqlite:///")) if database_url.startswith("sqlite:///") else None
    if path is None or (path.exists() and path.stat().st_size) or "?" in database_url:
        migrate(database_url)
        return
    if not _MIGRATED:
        template = Path(tempfile.mkdtemp(prefix="ledger-migrated-")) / "head.db"
        migrate(f"sqlite:///{template}")
        _MIGRATED.append(template)
    with sqlite3.connect(_MIGRATED[0]) as source, sqlite3.connect(path) as copy:
        source.backup(copy)  # a consistent copy, whatever the source's journal mode
    source.close()
    copy.close()


def forget_migrated() -> None:
    for template in _MIGRATED:
        shutil.rmtree(template.parent, ignore_errors=True)
    _MIGRATED.clear()
