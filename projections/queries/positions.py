"""Reading your writes: whether (or once) the projections have applied the log up to a position."""

from __future__ import annotations

import time

import anyio
import sqlalchemy as sa

from projections.tables import projection_positions


def position_reached(engine: sa.Engine, position: int, names: tuple[str, ...] = ("order_status",)) -> bool:
    """Whether the named projections have applied the log up to `position`: one short query."""
    query = sa.select(sa.func.min(projection_positions.c.position)).where(projection_positions.c.name.in_(names))
    with engine.connect() as conn:
        return (conn.execute(query).scalar() or 0) >= position


async def reached(engine: sa.Engine, position: int, *, timeout: float,
                  names: tuple[str, ...] = ("order_status",)) -> bool:
    """Wait until the named projections have applied the log up to `position`; False on timeout.

    Each check borrows a worker thread for one query only; between checks the waiter is a sleeping
    coroutine, so however many clients wait, the thread pool stays free for everyone else."""
    deadline, pause = time.monotonic() + timeout, 0.01
    while not await anyio.to_thread.run_sync(position_reached, engine, position, names):
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(pause)
        pause = min(pause * 2, 0.1)
    return True
