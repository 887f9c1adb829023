"""Prometheus metrics: counters of what this process did, and gauges of the shared state read at scrape.

Counters (notifications, signature failures, lock waits, version conflicts) are per process, as
Prometheus expects: it sums the instances. Deliveries, the manual queue, alerts and projection lag are
read from the database when scraped, so every process reports the same, whichever worker did the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from projections.tables import alerts, deliveries


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

    def watch(self, ledger: Any) -> None:
        self.registry.register(_SharedState(ledger))


class _SharedState(Collector):
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine, runner = self.ledger.engine, self.ledger.runner
        if engine is None or runner is None:
            return
        with engine.connect() as conn:
            by_state = conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)).all()
            by_kind = conn.execute(sa.select(alerts.c.kind, sa.func.count()).group_by(alerts.c.kind)).all()
        states = GaugeMetricFamily("ledger_deliveries", "Deliveries to the merchant's system, by state",
                                   labels=["state"])
        for state, count in by_state:
            states.add_metric([state], count)
        yield states
        queue = GaugeMetricFamily("ledger_manual_queue", "Deliveries abandoned and waiting for an operator")
        queue.add_metric([], dict(by_state).get("abandoned", 0))
        yield queue
        raised = GaugeMetricFamily("ledger_alerts", "Alerts raised, by kind", labels=["kind"])
        for kind, count in by_kind:
            raised.add_metric([kind], count)
        yield raised
        head = self.ledger.store.ping()
        lag = GaugeMetricFamily("ledger_projection_lag", "Events of the log a projection has not applied yet",
                                labels=["projection"])
        for name, position in runner.positions().items():
            lag.add_metric([name], head - position)
        yield lag
