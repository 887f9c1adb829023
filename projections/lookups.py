"""Point reads of the read model: one order's row, and waiting for the projections to reach a position."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from projections.tables import order_status, projection_positions


def order_row(engine: sa.Engine, app_id: str, out_trade_no: str) -> dict[str, Any] | None:
    query = sa.select(order_status).where(order_status.c.app_id == app_id,
                                          order_status.c.out_trade_no == out_trade_no)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def reached(engine: sa.Engine, position: int, *, timeout: float, names: tuple[str, ...] = ("order_status",)) -> bool:
    """Wait until the named projections have applied the log up to `position`; False on timeout."""
    deadline = time.monotonic() + timeout
    query = sa.select(sa.func.min(projection_positions.c.position)).where(projection_positions.c.name.in_(names))
    while True:
        with engine.connect() as conn:
            if (conn.execute(query).scalar() or 0) >= position:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
