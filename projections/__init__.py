"""The read side: projections of the event log into SQL tables that finance and auditors query."""

from projections.callbacks import CallbackLogProjection
from projections.finance import DailyTotalsProjection, JournalProjection
from projections.operations import AlertsProjection, DeliveriesProjection
from projections.order_status import OrderStatusProjection


def all_projections(*, downstream: bool = True, robots: bool = True) -> list:  # type: ignore[type-arg]
    """In dependency order: order_status first, the others look up an order's keys in it. `downstream` and
    `robots`: whether deliveries and alerts have anywhere to go (else their rows say so, not "pending")."""
    return [OrderStatusProjection(), CallbackLogProjection(), DailyTotalsProjection(), JournalProjection(),
            DeliveriesProjection(downstream=downstream), AlertsProjection(robots=robots)]
