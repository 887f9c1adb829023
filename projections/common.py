"""What every projection shares: batches in layers, China Standard Time days, portable upserts, an order's
natural key."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from projections.tables import order_status

Batch = list[tuple[int, Any]]  # (log position, event), in log order
CST = timezone(timedelta(hours=8), "CST")


@functools.lru_cache(maxsize=4096)
def alipay_time(text: str) -> datetime | None:
    """Alipay's `yyyy-MM-dd HH:mm:ss[.SSS]`, China Standard Time; None when absent or unreadable.
    Remembered: strptime was 8 % of the projections' CPU, and under load many callbacks share a second."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=CST)
        except (TypeError, ValueError):
            continue
    return None


def cst_day(text: str, fallback: datetime) -> date:
    """The China-Standard-Time day of an Alipay time, or of when the event was recorded."""
    moment = alipay_time(text) or fallback
    return moment.astimezone(CST).date()


def layers(events: Batch) -> list[Batch]:
    """Split a batch into layers holding at most one event of each stream, each stream's events in order.

    Every projection's rows belong to one order (or add up, as daily totals do), so events of different
    orders commute: within a layer they can be written in bulk, one statement per kind of change.
    """
    depth: dict[Any, int] = {}
    result: list[Batch] = []
    for position, event in events:
        level = depth.get(event.originator_id, 0)
        depth[event.originator_id] = level + 1
        if level == len(result):
            result.append([])
        result[level].append((position, event))
    return result


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], *,
                add_on_conflict: tuple[str, ...] = ()) -> None:
    """Insert rows in bulk; with `add_on_conflict` (the key columns), a row whose key exists instead adds
    its other columns to that row's. On PostgreSQL one statement whatever their number: one array per
    column, unnested (a statement per row, or SQLAlchemy's multi-row VALUES that psycopg must parse anew
    for every size, was measured as the projections' main cost). The arrays go in binary: psycopg's text
    arrays quote every element through a regex, which was most of what remained. Elsewhere an executemany."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(_sqlite_statement(table, tuple(rows[0]), add_on_conflict), rows)
        return
    columns = [table.c[name] for name in rows[0]]
    arrays = []
    for column in columns:
        values = [row[column.name] for row in rows]
        if isinstance(column.type, sa.TypeDecorator):
            values = [column.type.process_bind_param(value, conn.dialect) for value in values]
        arrays.append(values)
    conn.exec_driver_sql(_pg_statement(table, tuple(rows[0]), add_on_conflict, conn.dialect), tuple(arrays))


@functools.lru_cache(maxsize=64)
def _pg_statement(table: sa.Table, names: tuple[str, ...], keys: tuple[str, ...], dialect: sa.Dialect) -> str:
    types = ", ".join(f"%b::{table.c[name].type.compile(dialect=dialect)}[]" for name in names)
    statement = f'INSERT INTO {table.name} ({", ".join(names)}) SELECT * FROM unnest({types})'
    if keys:
        added = ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in names if name not in keys)
        statement += f' ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {added}'
    return statement


@functools.lru_cache(maxsize=64)
def _sqlite_statement(table: sa.Table, names: tuple[str, ...], keys: tuple[str, ...]) -> sa.Insert:
    if not keys:
        return table.insert()
    insert = sqlite.insert(table)
    return insert.on_conflict_do_update(index_elements=list(keys), set_={
        name: table.c[name] + insert.excluded[name] for name in names if name not in keys})


class OrderKey(NamedTuple):
    app_id: str
    out_trade_no: str
    auth_app_id: str  # the service provider's merchant; empty for an app's own order

    @property
    def path(self) -> str:
        """app_id/out_trade_no, or app_id[auth_app_id]/out_trade_no for a service provider's merchant: never the
        same for two orders (an app_id, configured, holds no bracket; an out_trade_no may hold anything)."""
        merchant = f"[{self.auth_app_id}]" if self.auth_app_id else ""
        return f"{self.app_id}{merchant}/{self.out_trade_no}"


def opened_merchant(event: Any) -> str:
    return getattr(event, "merchant", "")  # Opened events recorded before ISV mode have none


class OrderKeys:
    """order_id -> its OrderKey, read from order_status (which runs first), remembered."""

    def __init__(self, size: int = 10_000) -> None:
        self._known: dict[str, OrderKey] = {}
        self._size = size

    def learn(self, events: Batch) -> None:
        """Orders opened in this batch: their keys are in the event, no need to ask order_status."""
        for _, event in events:
            if type(event).__name__ == "Opened" and type(event).__qualname__.startswith("Order."):
                self._remember(str(event.originator_id),
                               OrderKey(event.app_id, event.out_trade_no, opened_merchant(event)))

    def __call__(self, conn: sa.Connection, order_id: object) -> OrderKey:
        key = str(order_id)
        if key not in self._known:
            t = order_status
            row = conn.execute(sa.select(t.c.app_id, t.c.out_trade_no, t.c.auth_app_id)
                               .where(t.c.order_id == key)).one()
            self._remember(key, OrderKey(row.app_id, row.out_trade_no, row.auth_app_id))
        return self._known[key]

    def _remember(self, key: str, keys: OrderKey) -> None:
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[key] = keys


ZERO = Decimal("0.00")
