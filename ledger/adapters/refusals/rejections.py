"""A bounded log of notifications the ledger refused (bad signature, unknown app or order), for security review.

Refused notifications never touch an order stream; this log keeps the newest `size` of them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from ledger.adapters.sql.engine import UtcDateTime
from ledger.domain.limits import TEXT_CONTROL

log = logging.getLogger(__name__)
BODY_LIMIT = 2048

metadata = sa.MetaData()
rejected_callbacks = sa.Table(
    "rejected_callbacks", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("remote_addr", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)


def printable(text: str) -> str:
    """`text` with control characters (NUL above all, which PostgreSQL's text refuses) and lone surrogates
    written as escapes, so any of it can be stored and shown."""
    return TEXT_CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


@dataclass(frozen=True)
class Rejection:
    received_at: datetime
    remote_addr: str
    reason: str
    detail: str
    body: str

    @classmethod
    def of(cls, received_at: datetime, remote_addr: str, reason: str, detail: str, body: bytes) -> Rejection:
        text = printable(body[:BODY_LIMIT].decode("ascii", errors="backslashreplace"))
        return cls(received_at, printable(remote_addr)[:64], reason[:64], printable(detail)[:500], text)


class RejectionLog(Protocol):
    def record(self, rejection: Rejection) -> None: ...
    def latest(self, limit: int = 100) -> list[dict[str, Any]]: ...


class SqlRejectionLog:
    def __init__(self, engine: sa.Engine, *, size: int) -> None:
        self.engine, self.size = engine, size

    def record(self, rejection: Rejection) -> None:
        # Never let the security log turn a clean 400 into an error. If the row cannot be written whole,
        # a minimal one says so: a forgery must not hide from this log by being odd.
        try:
            self._insert(rejection)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not record a rejected callback whole (%s): %s", rejection.reason, type(exc).__name__)
            minimal = Rejection(rejection.received_at, "unknown", printable(rejection.reason)[:64],
                                f"the full row could not be stored ({type(exc).__name__})", "")
            try:
                self._insert(minimal)
            except sa.exc.SQLAlchemyError:
                log.error("could not record a rejected callback (%s): %s", rejection.reason, type(exc).__name__)

    def _insert(self, rejection: Rejection) -> None:
        with self.engine.begin() as conn:
            inserted = conn.execute(rejected_callbacks.insert().values(**asdict(rejection))).inserted_primary_key
            assert inserted is not None  # an INSERT of one row always has its key
            new_id = inserted[0]
            conn.execute(rejected_callbacks.delete().where(rejected_callbacks.c.id <= new_id - self.size))

    def latest(self, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(rejected_callbacks).order_by(rejected_callbacks.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


class MemoryRejectionLog:
    """The in-process twin, for unit tests."""

    def __init__(self, *, size: int = 1000) -> None:
        self._rows: deque[dict[str, Any]] = deque(maxlen=size)
        self._ids = 0
        self._lock = threading.Lock()

    def record(self, rejection: Rejection) -> None:
        with self._lock:
            self._ids += 1
            self._rows.append({"id": self._ids, **asdict(rejection)})

    def latest(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._rows))[:limit]
