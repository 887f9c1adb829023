"""Operators' tables: each change's delivery to the merchant's system, and the alerts raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ledger.domain import outbox
from projections.common import Batch, OrderKeys, insert_many, layers
from projections.tables import alerts, deliveries


class DeliveriesProjection:
    name = "deliveries"
    tables = (deliveries,)

    def __init__(self, *, downstream: bool = True) -> None:
        self.keys = OrderKeys()
        # Without a downstream URL nothing sends a change: its row says so rather than "pending" for ever.
        self.new_state = outbox.PENDING if downstream else outbox.NO_DOWNSTREAM

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        self.keys.learn(events)
        for layer in layers(events):
            # New changes in bulk; the rest (deliveries' progress, rare) one statement each. Within a layer
            # each order appears once, so the inserts may go first.
            new = [self._new(conn, event) for _, event in layer]
            insert_many(conn, deliveries, [row for row in new if row is not None])
            for (_, event), row in zip(layer, new, strict=True):
                if row is None:
                    self._progress(conn, event)

    def _new(self, conn: sa.Connection, event: Any) -> dict[str, Any] | None:
        change = outbox.change_of(type(event).__name__, event)
        if change is None:
            return None
        key = self.keys(conn, event.originator_id)
        return {"order_id": str(event.originator_id), "change": change, "app_id": key.app_id,
                "auth_app_id": key.auth_app_id, "out_trade_no": key.out_trade_no, "state": self.new_state,
                "attempts": 0, "last_error": "", "updated_at": event.timestamp}

    def _progress(self, conn: sa.Connection, event: Any) -> None:
        kind, order_id, at = type(event).__name__, str(event.originator_id), event.timestamp
        if kind in ("ManualRetryRequested", "ManuallyResolved"):
            state = outbox.RETRY_REQUESTED if kind == "ManualRetryRequested" else outbox.RESOLVED
            conn.execute(deliveries.update().where(deliveries.c.order_id == order_id,
                                                   deliveries.c.change.in_(event.changes))
                         .values(state=state, next_retry_at=None, updated_at=at))
            return
        changes = _PROGRESS.get(kind)  # most events (callbacks, payments) are none of a delivery's business
        if changes is not None:
            conn.execute(deliveries.update().where(deliveries.c.order_id == order_id,
                                                   deliveries.c.change == event.change)
                         .values(**changes(event), updated_at=at))


_PROGRESS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "DeliveryAttempted": lambda e: {"state": outbox.IN_FLIGHT, "attempts": e.attempt, "started_at": e.started_at},
    "DeliverySucceeded": lambda e: {"state": outbox.SUCCEEDED, "next_retry_at": None, "last_error": ""},
    "DeliveryFailed": lambda e: {"state": outbox.FAILED, "next_retry_at": e.next_retry_at, "last_error": e.error},
    "DeliveryAbandoned": lambda e: {"state": outbox.ABANDONED, "next_retry_at": None},
}


WAITING, SENT, NO_ROBOTS = "waiting", "sent", "no_robots"  # an alert's status: sent once any robot has it


class AlertsProjection:
    name = "alerts"
    tables = (alerts,)

    def __init__(self, *, robots: bool = True) -> None:
        # Without a robot nothing sends an alert: its row says so rather than waiting for ever.
        self.new_status = WAITING if robots else NO_ROBOTS

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        for _, event in events:
            self._apply(conn, event)

    def _apply(self, conn: sa.Connection, event: Any) -> None:
        kind = type(event).__name__
        if kind == "AlertRaised":
            conn.execute(alerts.insert().values(alert_id=str(event.originator_id), kind=event.kind, key=event.key,
                                                message=event.message, raised_at=event.raised_at, sent_to="",
                                                status=self.new_status))
        elif kind == "AlertSent":
            row = alerts.c.alert_id == str(event.originator_id)
            sent = conn.execute(sa.select(alerts.c.sent_to).where(row)).scalar_one()
            robots = sorted({*filter(None, sent.split(",")), event.channel})
            conn.execute(alerts.update().where(row).values(sent_to=",".join(robots), status=SENT))
