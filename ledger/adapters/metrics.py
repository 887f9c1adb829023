"""Prometheus metrics: counters of what this process did, and gauges of the shared state read at scrape.

Counters (notifications, signature failures, lock waits, version conflicts) are per process, as
Prometheus expects: it sums the instances. Deliveries, the manual queue, alerts and projection lag are
read from the database when scraped, so every process reports the same, whichever worker did the work; what
was read is kept for a couple of seconds, so a flood of scrapes (the endpoint is open) costs one read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger.adapters.recent import Recent

SHARED_STATE_SECONDS = 2.0


@dataclass(frozen=True)
class SharedState:
    """What the gauges show, as read from the database (the composition root says how)."""

    deliveries: Mapping[str, int]  # by state
    manual_queue: int
    alerts: Mapping[str, int]  # by kind
    lag: Mapping[str, int]  # by projection: events of the log it has not applied yet


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

    def watch(self, read: Callable[[], SharedState], *, seconds: float = SHARED_STATE_SECONDS) -> None:
        """Export the gauges of the shared state, which `read()` reads (blocking) at most once per `seconds`."""
        self.registry.register(_SharedState(read, seconds))


class _SharedState(Collector):
    def __init__(self, read: Callable[[], SharedState], seconds: float) -> None:
        self.reading = Recent(read, seconds=seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self.reading.get()
        states = GaugeMetricFamily("ledger_deliveries", "Deliveries to the merchant's system, by state",
                                   labels=["state"])
        for state, count in reading.deliveries.items():
            states.add_metric([state], count)
        yield states
        queue = GaugeMetricFamily("ledger_manual_queue", "Deliveries abandoned and waiting for an operator")
        queue.add_metric([], reading.manual_queue)
        yield queue
        raised = GaugeMetricFamily("ledger_alerts", "Alerts raised, by kind", labels=["kind"])
        for kind, count in reading.alerts.items():
            raised.add_metric([kind], count)
        yield raised
        lag = GaugeMetricFamily("ledger_projection_lag", "Events of the log a projection has not applied yet",
                                labels=["projection"])
        for name, behind in reading.lag.items():
            lag.add_metric([name], behind)
        yield lag
