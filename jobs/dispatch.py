"""The log is the outbox: follows the event log like a projection and turns events into jobs and alerts.

Nothing is enqueued beside a commit. A change of an order (payment, refund, finish, close) or a manual
retry becomes a `deliver` message; an abandoned delivery, an amount mismatch or a day's bill not fetched becomes
an alert (whose raising dedupes itself); a raised alert wakes the sender. At least once: a crash after sending and
before the position moves sends again, which the actors shrug off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ledger.domain import outbox
from ledger.domain.trade_query import UNBELIEVED
from ledger.service.alerting import once_a_day
from projections.common import Batch, OrderKeys


class Dispatcher:
    name = "dispatcher"
    tables: tuple[sa.Table, ...] = ()

    def __init__(self, *, deliver: Callable[[str, str], None] | None, wake_alerts: Callable[[], None],
                 raise_alert: Callable[..., bool]) -> None:
        self.deliver, self.wake_alerts, self.raise_alert = deliver, wake_alerts, raise_alert
        self.keys = OrderKeys()

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        self.keys.learn(events)
        for _, event in events:
            self._dispatch(conn, event)

    def _dispatch(self, conn: sa.Connection, event: Any) -> None:
        kind, order_id = type(event).__name__, str(event.originator_id)
        change = outbox.change_of(kind, event)
        if change is not None and self.deliver:
            self.deliver(order_id, change)
        elif kind == "ManualRetryRequested" and self.deliver:
            for retried in event.changes:
                self.deliver(order_id, retried)
        elif kind == "DeliveryAbandoned":
            key = self.keys(conn, order_id)
            self.raise_alert("delivery_abandoned", f"{key.path}/{event.change}",
                             f"order {key.out_trade_no}: delivery of {event.change} abandoned after {event.attempts} "
                             f"attempts ({event.error}); it is in the manual queue", at=event.timestamp)
        elif kind == "AmountMismatch":
            key = self.keys(conn, order_id)
            self.raise_alert("amount_mismatch", key.path,
                             f"order {key.out_trade_no}: Alipay notified {event.notified}, the order is for "
                             f"{event.expected}; the payment was not confirmed", at=event.timestamp)
        elif kind == "AnomalyFound":
            key = self.keys(conn, order_id)
            self.raise_alert("anomaly", f"{key.path}/{event.kind}/{event.key}"[:200],
                             f"order {key.out_trade_no}: {event.detail}; not booked, the order is flagged",
                             at=event.timestamp)
        elif kind == "TradeQueryFailed" and event.reason in UNBELIEVED:
            key = self.keys(conn, order_id)
            self.raise_alert("trade_query_failed", f"{key.path}/{event.reason}",
                             f"order {key.out_trade_no}: Alipay's answer to a trade query was not believed "
                             f"({event.reason}: {event.error}); it is recorded, nothing was applied. Check the app's "
                             "keys with `ledger doctor`", at=event.timestamp)
        elif kind == "QueriesExhausted":
            key = self.keys(conn, order_id)
            self.raise_alert("queries_exhausted", key.path,
                             f"order {key.out_trade_no}: still unpaid after {event.steps} trade queries and no "
                             "notification; the schedule has ended", at=event.timestamp)
        elif kind == "BillFetchFailed":
            self._bill_not_fetched(event)
        elif kind == "AlertRaised":
            self.wake_alerts()

    def _bill_not_fetched(self, event: Any) -> None:
        """The daily job's attempt brought no bill: a bill refused for its detail disagreeing with its summary
        (once a day: each retry would raise it again), and the day given up."""
        where, day = f"{event.app_id}/{event.day}", event.day
        if event.reason == "totals_differ":
            then = "given up" if event.final else "tried again until the deadline (Alipay may publish it corrected)"
            self.raise_alert("bill_inconsistent", where,
                             f"app {event.app_id}: Alipay's trade bill of {day} disagrees with its own summary, so "
                             f"nothing of it is used; {then}: {event.error}", at=once_a_day(event.timestamp))
        if event.final:
            self.raise_alert("bill_unavailable", where,
                             f"app {event.app_id}: no trade bill of {day} after {event.attempt} attempts: the daily "
                             f"job has given up (last: {event.reason}: {event.error}). Fetch it with `ledger reconcile "
                             f"fetch --date {day} --app-id {event.app_id}` once Alipay has it, or import it",
                             at=event.timestamp)
