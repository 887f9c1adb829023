"""Per-test isolation on the shared servers: a database of its own, a Redis key prefix of its own."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

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
