"""The metrics' gauges of the shared state (ledger.adapters.metrics): exported from whatever the composition root
hands them to read, and read at most once per interval however often they are scraped."""

from __future__ import annotations

from prometheus_client import generate_latest

from ledger.adapters.metrics import Metrics, SharedState


def test_the_gauges_show_what_the_reader_returns() -> None:
    metrics = Metrics()
    metrics.watch(lambda: SharedState(deliveries={"abandoned": 2, "succeeded": 5}, manual_queue=2,
                                      alerts={"anomaly": 1}, lag={"order_status": 3}))
    text = generate_latest(metrics.registry).decode()
    assert 'ledger_deliveries{state="abandoned"} 2.0' in text and 'ledger_deliveries{state="succeeded"} 5.0' in text
    assert "ledger_manual_queue 2.0" in text
    assert 'ledger_alerts{kind="anomaly"} 1.0' in text
    assert 'ledger_projection_lag{projection="order_status"} 3.0' in text


def test_a_flood_of_scrapes_reads_once_per_interval() -> None:
    reads: list[None] = []

    def read() -> SharedState:
        reads.append(None)
        return SharedState(deliveries={}, manual_queue=0, alerts={}, lag={})

    metrics = Metrics()
    metrics.watch(read, seconds=60)
    for _ in range(20):
        generate_latest(metrics.registry)
    assert len(reads) == 1


def test_without_a_reader_only_the_counters_are_exported() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert "ledger_notifications" in text and "ledger_manual_queue" not in text
