"""What the Prometheus gauges show of the read model (ledger.adapters.metrics exports them; bootstrap wires this
in): deliveries by state, the manual queue, alerts by kind. One connection for all."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from projections.queries.operations import MANUAL_QUEUE
from projections.tables import alerts, deliveries


@dataclass(frozen=True)
class Counts:
    deliveries: dict[str, int]  # by state
    manual_queue: int
    alerts: dict[str, int]  # by kind


def counts(engine: sa.Engine) -> Counts:
    with engine.connect() as conn:
        by_state = conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)).all()
        by_kind = conn.execute(sa.select(alerts.c.kind, sa.func.count()).group_by(alerts.c.kind)).all()
    states = {str(state): int(n) for state, n in by_state}
    return Counts(states, states.get(MANUAL_QUEUE, 0), {str(kind): int(n) for kind, n in by_kind})
