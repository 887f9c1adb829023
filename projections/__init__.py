"""The read side: projections of the event log into SQL tables that finance and auditors query (the tables in
`tables`, how each is written in its projection's module, run by `runner`), and every SQL read of them
(`queries`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from projections.callbacks import CallbackLogProjection
from projections.finance import DailyTotalsProjection, JournalProjection
from projections.operations import AlertsProjection, DeliveriesProjection
from projections.order_status import OrderStatusProjection

if TYPE_CHECKING:
    from projections.runner import Projection


def all_projections() -> list[Projection]:
    """In dependency order: order_status first, the others look up an order's keys in it."""
    return [OrderStatusProjection(), CallbackLogProjection(), DailyTotalsProjection(), JournalProjection(),
            DeliveriesProjection(), AlertsProjection()]
