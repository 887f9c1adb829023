"""Prometheus metrics: counters of what this process did, and gauges of the shared state read at scrape.

Counters (notifications, signature failures, lock waits, version conflicts) are per process, as
Prometheus expects: it sums the instances. Deliveries, the manual queue, alerts and projection lag are
read from the database when scraped, so every process reports the same, whichever worker did the work; what
was read is kept for a couple of seconds, so a flood of scrapes (the endpoint is open) costs one read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger.adapters.recent import Recent
from projections.tables import alerts, deliveries

SHARED_STATE_SECONDS = 2.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.notifications = Counter("ledger_notifications", "Notifications answered, by outcome",
                                     ["outcome"], registry=self.registry)
        self.signature_failures = Counter("ledger_signature_failures", "Notifications whose signature failed",
                                          registry=self.registry)
        self.lock_wait = Histogram("ledger_lock_wait_seconds", "Time waiting for an order's lock",
                                   buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 3, 10), registry=self.registry)
        self.batch_size = Histogram("ledger_group_commit_size", "Callbacks saved by one group commit",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=self.registry)
        self.version_conflicts = Counter("ledger_version_conflicts", "Appends refused by the version check",
                                         registry=self.registry)
        self.copies_not_recorded = Counter("ledger_copies_not_recorded",
                                           "Copies of a notification beyond LEDGER_MAX_COPIES, answered, not recorded",
                                           registry=self.registry)

    def watch(self, ledger: Any, *, seconds: float = SHARED_STATE_SECONDS) -> None:
        self.registry.register(_SharedState(ledger, seconds))


@dataclass(frozen=True)
class _Reading:
    by_state: list[tuple[str, int]]
    by_kind: list[tuple[str, int]]
    head: int
    positions: dict[str, int]


class _SharedState(Collector):
    def __init__(self, ledger: Any, seconds: float) -> None:
        self.ledger = ledger
        self.reading = Recent(self._read, seconds=seconds)

    def _read(self) -> _Reading:
        with self.ledger.engine.connect() as conn:
            by_state = conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)).all()
            by_kind = conn.execute(sa.select(alerts.c.kind, sa.func.count()).group_by(alerts.c.kind)).all()
        return _Reading([tuple(row) for row in by_state], [tuple(row) for row in by_kind], self.ledger.store.ping(),
                        self.ledger.runner.positions())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.ledger.engine is None or self.ledger.runner is None:
            return
        reading = self.reading.get()
        states = GaugeMetricFamily("ledger_deliveries", "Deliveries to the merchant's system, by state",
                                   labels=["state"])
        for state, count in reading.by_state:
            states.add_metric([state], count)
        yield states
        queue = GaugeMetricFamily("ledger_manual_queue", "Deliveries abandoned and waiting for an operator")
        queue.add_metric([], dict(reading.by_state).get("abandoned", 0))
        yield queue
        raised = GaugeMetricFamily("ledger_alerts", "Alerts raised, by kind", labels=["kind"])
        for kind, count in reading.by_kind:
            raised.add_metric([kind], count)
        yield raised
        lag = GaugeMetricFamily("ledger_projection_lag", "Events of the log a projection has not applied yet",
                                labels=["projection"])
        for name, position in reading.positions.items():
            lag.add_metric([name], reading.head - position)
        yield lag
