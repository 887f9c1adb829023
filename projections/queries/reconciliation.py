"""Reconciliation's reads: the ledger's side of a day for matching (order_status, refunds), the bills imported, and
for finance the days matched and their findings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from ledger.domain.matching import LedgerRefund, LedgerTrade
from projections.common import CST, ZERO
from projections.tables import bills, order_status, reconciliation_days, reconciliation_findings, refunds

CHUNK = 500  # keys per IN (...): well within every driver's parameter limit
STATES = ("open", "carried", "resolved", "closed")


@dataclass
class LedgerSide:
    trades: dict[str, LedgerTrade]  # by out_trade_no: those paid on the day, and those the bill names
    refunds: dict[str, list[LedgerRefund]]  # by out_trade_no: those booked on the day, and of the orders the bill names
    booked_payments: list[str]  # the out_trade_nos whose payment the ledger booked on the day
    booked_refunds: list[LedgerRefund]
    registration: bool  # whether the merchant registers its orders (any of the app's orders is registered)


def _chunks(keys: Iterable[str]) -> Iterator[list[str]]:
    keys = sorted(set(keys))
    for start in range(0, len(keys), CHUNK):
        yield keys[start:start + CHUNK]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), CST)
    return start, start + timedelta(days=1)


def _trade(row: Any) -> LedgerTrade:
    paid_day = row.gmt_payment.astimezone(CST).date() if row.gmt_payment is not None else None
    return LedgerTrade(out_trade_no=row.out_trade_no, status=row.status, trade_no=row.trade_no,
                       paid_amount=row.paid_amount if row.trade_no is not None else None, registered=row.registered,
                       registered_amount=row.registered_amount, amount_mismatch=row.amount_mismatch, paid_day=paid_day)


def ledger_side(engine: sa.Engine, app_id: str, day: date, *, payments: Iterable[str],
                refunded: Iterable[str]) -> LedgerSide:
    """The ledger's side of the app's `day` (its own orders: a service provider's merchants have bills of their
    own), with every order of `payments` and every refund of the orders in `refunded` (what the bill names),
    whatever day the ledger booked them on."""
    o, r = order_status, refunds
    start, end = day_bounds(day)
    columns = (o.c.out_trade_no, o.c.status, o.c.trade_no, o.c.paid_amount, o.c.registered, o.c.registered_amount,
               o.c.amount_mismatch, o.c.gmt_payment)
    mine = (o.c.app_id == app_id, o.c.auth_app_id == "")
    with engine.connect() as conn:
        booked = [_trade(row) for row in conn.execute(
            sa.select(*columns).where(*mine, o.c.gmt_payment >= start, o.c.gmt_payment < end,
                                      o.c.trade_no.is_not(None)))]
        trades = {trade.out_trade_no: trade for trade in booked}
        for chunk in _chunks(set(payments) - set(trades)):
            trades.update((row.out_trade_no, _trade(row)) for row in conn.execute(
                sa.select(*columns).where(*mine, o.c.out_trade_no.in_(chunk))))
        refund_columns = (r.c.position, r.c.out_trade_no, r.c.out_biz_no, r.c.amount, r.c.day)
        found = {row.position: row for row in conn.execute(
            sa.select(*refund_columns).where(r.c.app_id == app_id, r.c.auth_app_id == "", r.c.day == day))}
        on_day = set(found)
        for chunk in _chunks(refunded):
            found.update((row.position, row) for row in conn.execute(
                sa.select(*refund_columns).where(r.c.app_id == app_id, r.c.auth_app_id == "",
                                                 r.c.out_trade_no.in_(chunk))))
        registration = conn.execute(sa.select(o.c.id).where(o.c.app_id == app_id, o.c.registered).limit(1)).first()
    by_order: dict[str, list[LedgerRefund]] = {}
    booked_refunds = []
    for position in sorted(found):
        row = found[position]
        refund = LedgerRefund(row.out_trade_no, row.out_biz_no, row.amount, row.day)
        by_order.setdefault(row.out_trade_no, []).append(refund)
        if position in on_day:
            booked_refunds.append(refund)
    return LedgerSide(trades, by_order, [t.out_trade_no for t in booked], booked_refunds, registration is not None)


def bill_of(engine: sa.Engine, app_id: str, day: date) -> dict[str, Any] | None:
    """The bill of the app's day imported last (a day's bill downloaded twice is usually the same file)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(bills).where(bills.c.app_id == app_id, bills.c.bill_date == day)
                           .order_by(bills.c.position.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def days_report(engine: sa.Engine, *, day_from: date, day_to: date, app_id: str | None = None) -> list[dict[str, Any]]:
    """One row per app and day with a bill imported or a run recorded, from day_from to day_to inclusive: both
    sides' counts and amounts, the fee, the net, and the findings in each state."""
    d, f, b = reconciliation_days, reconciliation_findings, bills
    where_d: list[sa.ColumnElement[bool]] = [d.c.day >= day_from, d.c.day <= day_to]
    where_b: list[sa.ColumnElement[bool]] = [b.c.bill_date >= day_from, b.c.bill_date <= day_to]
    where_f: list[sa.ColumnElement[bool]] = [f.c.day >= day_from, f.c.day <= day_to]
    if app_id is not None:
        where_d.append(d.c.app_id == app_id)
        where_b.append(b.c.app_id == app_id)
        where_f.append(f.c.app_id == app_id)
    with engine.connect() as conn:
        matched = {(row["app_id"], row["day"]): dict(row) for row in conn.execute(
            sa.select(d).where(*where_d)).mappings()}
        imported = {(row.app_id, row.bill_date): row for row in conn.execute(
            sa.select(b.c.app_id, b.c.bill_date, sa.func.count().label("files")).where(*where_b)
            .group_by(b.c.app_id, b.c.bill_date))}
        states: dict[tuple[str, date], dict[str, int]] = {}
        for count in conn.execute(sa.select(f.c.app_id, f.c.day, f.c.state, sa.func.count().label("n"))
                                  .where(*where_f).group_by(f.c.app_id, f.c.day, f.c.state)):
            states.setdefault((count.app_id, count.day), {})[count.state] = count.n
    result = []
    for key in sorted(set(matched) | set(imported)):
        row = matched.get(key, {})
        counts = states.get(key, {})
        result.append({
            "app_id": key[0], "day": key[1], "bill_imported": key in imported,
            "bill_id": row.get("bill_id"), "runs": row.get("runs", 0), "last_run_at": row.get("last_run_at"),
            "bill_payments": row.get("bill_payments"), "bill_payment_amount": row.get("bill_total_amount"),
            "bill_refunds": row.get("bill_refunds"), "bill_refund_amount": row.get("bill_refund_amount"),
            "ledger_payments": row.get("ledger_payments"), "ledger_payment_amount": row.get("ledger_payment_amount"),
            "ledger_refunds": row.get("ledger_refunds"), "ledger_refund_amount": row.get("ledger_refund_amount"),
            "matched": row.get("matched"), "fee": row.get("bill_fee"), "share": row.get("bill_share"),
            "net": row.get("bill_net"), "fees_posted": row.get("fees_posted", ZERO),
            **{f"findings_{state}": counts.get(state, 0) for state in STATES},
            "fetch_state": row.get("fetch_state"), "fetch_error": row.get("fetch_error"),
        })
    return result


DAY_COLUMNS = ("app_id", "day", "bill_imported", "bill_id", "runs", "last_run_at", "bill_payments",
               "bill_payment_amount", "bill_refunds", "bill_refund_amount", "ledger_payments", "ledger_payment_amount",
               "ledger_refunds", "ledger_refund_amount", "matched", "fee", "share", "net", "fees_posted",
               *(f"findings_{state}" for state in STATES), "fetch_state", "fetch_error")  # days_report's, in order
FINDING_COLUMNS = tuple(c.name for c in reconciliation_findings.c if c.name not in ("position", "last_version"))


def day_findings(engine: sa.Engine, day: date, *, app_id: str | None = None, kind: str | None = None,
                 state: str | None = None) -> list[dict[str, Any]]:
    f = reconciliation_findings
    where: list[sa.ColumnElement[bool]] = [f.c.day == day]
    for column, value in ((f.c.app_id, app_id), (f.c.kind, kind), (f.c.state, state)):
        if value is not None:
            where.append(column == value)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*(f.c[name] for name in FINDING_COLUMNS)).where(*where)
                            .order_by(f.c.app_id, f.c.kind, f.c.key)).mappings().all()
    return [dict(row) for row in rows]


def finding_row(engine: sa.Engine, finding_id: str) -> dict[str, Any] | None:
    f = reconciliation_findings
    with engine.connect() as conn:
        row = conn.execute(sa.select(*(f.c[name] for name in FINDING_COLUMNS))
                           .where(f.c.finding_id == finding_id)).mappings().first()
    return dict(row) if row else None


def days_with_open_findings(engine: sa.Engine, *, opened_before: datetime) -> list[tuple[str, date, int]]:
    """(app_id, day, open findings) of the days with findings open since before `opened_before`."""
    f = reconciliation_findings
    with engine.connect() as conn:
        return [(row.app_id, row.day, row.n) for row in conn.execute(
            sa.select(f.c.app_id, f.c.day, sa.func.count().label("n"))
            .where(f.c.state == "open", f.c.opened_at < opened_before)
            .group_by(f.c.app_id, f.c.day).order_by(f.c.app_id, f.c.day))]
