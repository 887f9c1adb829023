"""The read side: projections of the event log into SQL tables that finance and auditors query."""

from projections.callbacks import CallbackLogProjection
from projections.finance import DailyTotalsProjection, JournalProjection
from projections.operations import AlertsProjection, DeliveriesProjection
from projections.order_status import OrderStatusProjection


def all_projections() -> list:  # type: ignore[type-arg]
    """In dependency order: order_status first, the others look up an order's keys in it."""
    return [OrderStatusProjection(), CallbackLogProjection(), DailyTotalsProjection(), JournalProjection(),
            DeliveriesProjection(), AlertsProjection()]
