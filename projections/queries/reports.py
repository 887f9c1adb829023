"""Finance's daily report: daily_totals rows and their sums."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from projections.common import ZERO
from projections.tables import daily_totals

DAILY_COLUMNS = tuple(daily_totals.c.keys())
TOTALLED = ("payments_count", "payments_amount", "refunds_count", "refunds_amount", "net_amount")


def daily_report(engine: sa.Engine, *, day_from: date, day_to: date, app_id: str | None = None,
                 auth_app_id: str | None = None) -> list[dict[str, Any]]:
    """daily_totals rows from day_from to day_to, both inclusive (China Standard Time days), by day, app and
    merchant (a service provider's; "" for the app's own)."""
    t = daily_totals
    where: list[sa.ColumnElement[bool]] = [t.c.day >= day_from, t.c.day <= day_to]
    if app_id is not None:
        where.append(t.c.app_id == app_id)
    if auth_app_id is not None:
        where.append(t.c.auth_app_id == auth_app_id)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(*where).order_by(t.c.day, t.c.app_id, t.c.auth_app_id)).mappings().all()
    return [dict(row) for row in rows]


def report_totals(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sums of the counts and amounts of daily_report's rows."""
    return {name: sum((day[name] for day in days), ZERO if name.endswith("amount") else 0) for name in TOTALLED}
