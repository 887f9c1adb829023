"""The read side: projections of the event log into SQL tables that finance and auditors query (the tables in
`tables`, how each is written in its projection's module, run by `runner`), and every SQL read of them
(`queries`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from projections.bills import BillsProjection
from projections.callbacks import CallbackLogProjection
from projections.finance import DailyTotalsProjection, JournalProjection
from projections.messages import MessagesProjection
from projections.operations import AlertsProjection, DeliveriesProjection
from projections.order_status import OrderStatusProjection
from projections.reconciliation import ReconciliationProjection, RefundsProjection

if TYPE_CHECKING:
    from projections.runner import Projection


def all_projections(*, downstream: bool = True, robots: bool = True,
                    query_schedule: Sequence[float] = ()) -> list[Projection]:
    """In dependency order: order_status first, the others look up an order's keys in it. `downstream` and
    `robots`: whether deliveries and alerts have anywhere to go (else their rows say so, not "pending");
    `query_schedule`: when a pending order is next asked about (LEDGER_QUERY_SCHEDULE)."""
    return [OrderStatusProjection(query_schedule=query_schedule), CallbackLogProjection(), DailyTotalsProjection(),
            JournalProjection(), DeliveriesProjection(downstream=downstream), AlertsProjection(robots=robots),
            MessagesProjection(), BillsProjection(), RefundsProjection(), ReconciliationProjection()]
