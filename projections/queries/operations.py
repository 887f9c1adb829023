"""Operators' reads of the failure stream's tables: the manual queue, the deliveries that are overdue, and the
alerts (counts, and those a robot has not had)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa

from ledger.domain import outbox
from projections.operations import NO_ROBOTS, WAITING
from projections.tables import alerts, deliveries, order_status

# What an operator must settle: a delivery the retries gave up on (ledger.domain.order decides when).
MANUAL_QUEUE = outbox.ABANDONED
_UNSENT = sa.select(sa.func.count()).select_from(alerts).where(alerts.c.status == WAITING)


def manual_queue(engine: sa.Engine) -> list[dict[str, Any]]:
    """The abandoned deliveries, oldest first."""
    d = deliveries.c
    query = sa.select(deliveries).where(d.state == MANUAL_QUEUE).order_by(d.updated_at, d.order_id, d.change)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def deliveries_due(engine: sa.Engine, *, now: datetime, grace: timedelta, lease: timedelta,
                   limit: int = 1000) -> list[tuple[str, str]]:
    """(order_id, change) of deliveries whose message looks lost: a retry overdue by `grace`, an attempt in
    flight past its `lease`, or one waiting to start for `grace`. The order's own record decides again."""
    d = deliveries.c
    overdue = sa.or_(
        sa.and_(d.state == outbox.FAILED, d.next_retry_at <= now - grace),
        sa.and_(d.state == outbox.IN_FLIGHT, d.started_at <= now - lease),
        sa.and_(d.state.in_([outbox.PENDING, outbox.RETRY_REQUESTED, outbox.NO_DOWNSTREAM]),
                d.updated_at <= now - grace))
    with engine.connect() as conn:
        return [(order_id, change) for order_id, change in conn.execute(sa.select(d.order_id, d.change)
                                                                         .where(overdue).limit(limit))]


def alerts_unsent(engine: sa.Engine) -> int:
    """How many alerts no robot has had yet (of those there was a robot for)."""
    with engine.connect() as conn:
        return int(conn.execute(_UNSENT).scalar_one())


def alert_counts(engine: sa.Engine) -> dict[str, Any]:
    """Alerts raised by kind (how many, the last one's time); how many wait for a robot, and how many have none
    to go to (no robot configured when they were projected)."""
    query = sa.select(alerts.c.kind, sa.func.count(), sa.func.max(alerts.c.raised_at)).group_by(alerts.c.kind)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        by_status = sa.select(alerts.c.status, sa.func.count()).group_by(alerts.c.status)
        status: dict[str, int] = {str(name): int(n) for name, n in conn.execute(by_status)}
    return {"by_kind": {kind: {"count": n, "last_raised_at": last} for kind, n, last in rows},
            "waiting_to_be_sent": status.get(WAITING, 0), "no_robots": status.get(NO_ROBOTS, 0)}


def alerts_not_sent_to(engine: sa.Engine, robot: str, *, limit: int) -> list[str]:
    """The ids of the newest `limit` alerts the table says `robot` has not had (the table may lag the log)."""
    query = (sa.select(alerts.c.alert_id).where(alerts.c.sent_to.notlike(f"%{robot}%"))
             .order_by(alerts.c.raised_at.desc()).limit(limit))
    with engine.connect() as conn:
        return [str(alert_id) for alert_id in conn.execute(query).scalars()]


class QueryDue(NamedTuple):
    order_id: str
    app_id: str
    auth_app_id: str
    query_step: int  # the next step of its schedule
    registered_at: datetime


def queries_due(engine: sa.Engine, *, now: datetime, app_ids: Collection[str], lease: timedelta,
                limit: int = 200) -> list[QueryDue]:
    """Pending orders whose next scheduled trade query is due and not taken by a worker within `lease`, the
    longest due first; at most `limit`, so a burst of registrations is asked about over several sweeps, not all
    at once. The order's own record decides again (ledger.domain.order.take_query_step)."""
    if not app_ids:
        return []
    o = order_status.c
    query = (sa.select(o.order_id, o.app_id, o.auth_app_id, o.query_step, o.registered_at)
             .where(o.next_query_at <= now, o.status == "PENDING", o.app_id.in_(list(app_ids)),
                    sa.or_(o.query_taken_at.is_(None), o.query_taken_at <= now - lease))
             .order_by(o.next_query_at).limit(limit))
    with engine.connect() as conn:
        return [QueryDue(row.order_id, row.app_id, row.auth_app_id, int(row.query_step), row.registered_at)
                for row in conn.execute(query)]
