"""Notifications whose signature verified but whose content lies beyond Alipay's limits (ledger.domain.limits):
authentic, yet not bookable. Each is kept whole, byte for byte as its first copy came, once per notification
(copies are counted), where an operator finds it (`GET /api/quarantined-callbacks`); none of it ever reaches
an order or a projection.

A notification is known by what Alipay signed: its parameters with a value, sorted, `sign` without the
whitespace a gateway may wrap it with. Copies padded with empty parameters or a re-wrapped `sign` (which
verify all the same) are copies of one row, so this log, never trimmed, grows only with what Alipay signed.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ledger.adapters.refusals.rejections import metadata, printable
from ledger.adapters.sql.engine import UtcDateTime
from ledger.alipay.signature import signed_string

quarantined_callbacks = sa.Table(
    "quarantined_callbacks", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("notification_sha256", sa.String(64), nullable=False, unique=True),  # of the signed content
    sa.Column("first_received_at", UtcDateTime(), nullable=False),
    sa.Column("last_received_at", UtcDateTime(), nullable=False),
    sa.Column("copies", sa.Integer, nullable=False),
    sa.Column("remote_addr", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class Quarantined:
    received_at: datetime
    remote_addr: str
    reason: str
    detail: str
    body: bytes
    sha256: str  # of the notification's signed content (see the module's docstring)
    name: str  # app_id/notify_id, for the alert

    @classmethod
    def of(cls, params: dict[str, str], received_at: datetime, remote_addr: str, reason: str, detail: str,
           body: bytes) -> Quarantined:
        # What Alipay signed (the V2 string: every parameter but sign), and the sign as the SDKs decode it.
        content = signed_string(params, keep_sign_type=True) + "&sign=" + "".join(params.get("sign", "").split())
        digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
        name = f"{params.get('app_id', '')}/{params.get('notify_id', '')}"[:200]
        return cls(received_at, remote_addr, reason, detail, body, digest, printable(name))


class QuarantineLog(Protocol):
    def keep(self, item: Quarantined) -> bool:
        """Store it; True when this body is new (not a copy of one kept already)."""
        ...

    def latest(self, limit: int = 100) -> list[dict[str, Any]]: ...


def view(row: dict[str, Any]) -> dict[str, Any]:
    """A row for operators: the body as text (escaped where it is not printable ASCII)."""
    return {**row, "body": printable(bytes(row["body"]).decode("ascii", errors="backslashreplace"))}


class SqlQuarantineLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def keep(self, item: Quarantined) -> bool:
        t = quarantined_callbacks
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(t).values(
            notification_sha256=item.sha256, first_received_at=item.received_at, last_received_at=item.received_at,
            copies=1, remote_addr=printable(item.remote_addr)[:64], reason=item.reason[:64],
            detail=printable(item.detail)[:1000], body=item.body)
        upsert = insert.on_conflict_do_update(index_elements=[t.c.notification_sha256], set_={
            "copies": t.c.copies + 1, "last_received_at": insert.excluded.last_received_at}).returning(t.c.copies)
        with self.engine.begin() as conn:
            return bool(conn.execute(upsert).scalar_one() == 1)

    def latest(self, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(quarantined_callbacks).order_by(quarantined_callbacks.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [view(dict(row._mapping)) for row in conn.execute(query)]


class MemoryQuarantineLog:
    """The in-process twin, for unit tests and the in-memory store."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def keep(self, item: Quarantined) -> bool:
        with self._lock:
            row = self._rows.get(item.sha256)
            if row is not None:
                row.update(copies=row["copies"] + 1, last_received_at=item.received_at)
                return False
            self._rows[item.sha256] = {
                "id": len(self._rows) + 1, "notification_sha256": item.sha256, "first_received_at": item.received_at,
                "last_received_at": item.received_at, "copies": 1, "remote_addr": item.remote_addr,
                "reason": item.reason, "detail": item.detail, "body": item.body}
            return True

    def latest(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            return [view(row) for row in sorted(self._rows.values(), key=lambda r: -r["id"])[:limit]]
