"""Finance's and the API's reads of order_status: one order, and orders by keyset pages.

Times come back timezone-aware in UTC and money as Decimal, whichever database answered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ledger.domain.notice import merchant_of
from projections.common import ZERO
from projections.tables import order_status

ORDER_COLUMNS = tuple(order_status.c.keys())


def order_row(engine: sa.Engine, app_id: str, out_trade_no: str, auth_app_id: str = "") -> dict[str, Any] | None:
    """One order's row; `auth_app_id` names a service provider's merchant ("" for the app's own orders)."""
    query = sa.select(order_status).where(order_status.c.app_id == app_id,
                                          order_status.c.auth_app_id == merchant_of(app_id, auth_app_id),
                                          order_status.c.out_trade_no == out_trade_no)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def list_orders(engine: sa.Engine, *, statuses: Sequence[str] = (), paid_from: datetime | None = None,
                paid_to: datetime | None = None, app_id: str | None = None, auth_app_id: str | None = None,
                after_id: int | None = None, limit: int) -> list[dict[str, Any]]:
    """One page of order_status rows by ascending id, after `after_id`; paid_from inclusive, paid_to exclusive."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    t = order_status
    where: list[sa.ColumnElement[bool]] = [t.c.status.in_(list(statuses))] if statuses else []
    if paid_from is not None:
        where.append(t.c.gmt_payment >= _aware(paid_from, "paid_from"))
    if paid_to is not None:
        where.append(t.c.gmt_payment < _aware(paid_to, "paid_to"))
    if app_id is not None:
        where.append(t.c.app_id == app_id)
    if auth_app_id is not None:
        where.append(t.c.auth_app_id == auth_app_id)
    if after_id is not None:
        where.append(t.c.id > after_id)
    query = sa.select(t).where(*where).order_by(t.c.id).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{name: _read(value) for name, value in row.items()} for row in rows]


def iter_orders(engine: sa.Engine, *, statuses: Sequence[str] = (), paid_from: datetime | None = None,
                paid_to: datetime | None = None, app_id: str | None = None, auth_app_id: str | None = None,
                after_id: int | None = None, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every matching row, read `page` rows at a time by keyset; no connection is held between pages."""
    while True:
        rows = list_orders(engine, statuses=statuses, paid_from=paid_from, paid_to=paid_to, app_id=app_id,
                           auth_app_id=auth_app_id, after_id=after_id, limit=page)
        yield from rows
        if len(rows) < page:
            return
        after_id = rows[-1]["id"]


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment


def _read(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.quantize(ZERO)
    return value
