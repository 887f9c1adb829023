"""Operators' reads of the messages table: the recorded messages of Alipay's message service, by keyset pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from projections.tables import messages

MESSAGE_COLUMNS = tuple(messages.c.keys())


def list_messages(engine: sa.Engine, *, msg_method: str | None = None, app_id: str | None = None,
                  received_from: datetime | None = None, received_to: datetime | None = None,
                  after_position: int | None = None, limit: int) -> list[dict[str, Any]]:
    """One page of messages by ascending log position, after `after_position`; received_from inclusive,
    received_to exclusive (both timezone-aware)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    c = messages.c
    where: list[sa.ColumnElement[bool]] = []
    if msg_method is not None:
        where.append(c.msg_method == msg_method)
    if app_id is not None:
        where.append(c.app_id == app_id)
    for moment, name in ((received_from, "received_from"), (received_to, "received_to")):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
    if received_from is not None:
        where.append(c.received_at >= received_from)
    if received_to is not None:
        where.append(c.received_at < received_to)
    if after_position is not None:
        where.append(c.position > after_position)
    query = sa.select(messages).where(*where).order_by(c.position).limit(limit)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def iter_messages(engine: sa.Engine, *, page: int = 1000, after_position: int | None = None,
                  **filters: Any) -> Iterator[dict[str, Any]]:
    """Every matching message, read `page` rows at a time by keyset; no connection is held between pages."""
    while True:
        rows = list_messages(engine, **filters, after_position=after_position, limit=page)
        yield from rows
        if len(rows) < page:
            return
        after_position = rows[-1]["position"]
