"""Bills' bytes in the ledger's database (table `bill_files`, migration 0009): the default, so a bill is backed
up with the log that refers to it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ledger.adapters.sql.engine import UtcDateTime

metadata = sa.MetaData()
bill_files = sa.Table(
    "bill_files", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("stored_at", UtcDateTime(), nullable=False),
)


class SqlBillFiles:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def keep(self, sha256: str, data: bytes) -> None:
        row = {"sha256": sha256, "size": len(data), "content": bytes(data), "stored_at": datetime.now(UTC)}
        dialect = self.engine.dialect.name
        insert = (postgresql.insert(bill_files) if dialect == "postgresql" else sqlite.insert(bill_files))
        with self.engine.begin() as conn:
            conn.execute(insert.on_conflict_do_nothing(index_elements=["sha256"]), row)

    def read(self, sha256: str) -> bytes | None:
        with self.engine.connect() as conn:
            data = conn.scalar(sa.select(bill_files.c.content).where(bill_files.c.sha256 == sha256))
        if data is None:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"the bytes kept for bill {sha256} no longer have that hash: they were changed")
        return bytes(data)
