"""Alerts raised on a hot path: handed to a thread at once, recorded when the event store takes them, once."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dramatiq.rate_limits.backends import StubBackend
from eventsourcing.persistence import OperationalError

from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.domain.alert import Alert
from ledger.service.alert_queue import AlertQueue
from ledger.service.alerting import AlertService
from tests.support.waiting import wait_until

GENEROUS = 10.0
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """A stand-in for `AlertService.raise_alert`: fails `failures` times, blocks while `stuck` is clear."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.entered = 0
        self.calls: list[tuple[str, str, datetime, float]] = []
        self.stuck = threading.Event()
        self.stuck.set()

    def __call__(self, kind: str, key: str, message: str, at: datetime) -> bool:
        self.entered += 1
        self.stuck.wait(GENEROUS)
        self.calls.append((kind, key, at, time.monotonic()))
        if len(self.calls) <= self.failures:
            raise OperationalError("couldn't get a connection after 2.00 sec")
        return True


def test_putting_an_alert_returns_at_once_while_the_store_is_stuck() -> None:
    recorder = Recorder()
    recorder.stuck.clear()
    alerts = AlertQueue(recorder, clock=Clock())
    started = time.monotonic()
    for number in range(5):
        alerts.put("redis_degraded", f"redis-{number}", "Redis is unreachable")
    assert time.monotonic() - started < 0.05
    assert alerts.pending == 5 and recorder.calls == []
    recorder.stuck.set()
    assert wait_until(lambda: alerts.pending == 0, GENEROUS, every=0.005)
    assert [key for _, key, _, _ in recorder.calls] == [f"redis-{number}" for number in range(5)]
    alerts.close()


def test_an_alert_the_store_refused_is_tried_again_with_growing_waits_and_the_moment_it_was_raised() -> None:
    recorder, clock = Recorder(failures=3), Clock()
    alerts = AlertQueue(recorder, clock=clock, first_wait=0.02, max_wait=0.05)
    alerts.put("redis_degraded", "redis", "Redis is unreachable")
    clock.now = T0 + timedelta(hours=1)  # later tries keep the first moment: the same window, the same alert id
    assert wait_until(lambda: alerts.pending == 0, GENEROUS, every=0.005)
    assert len(recorder.calls) == 4 and {at for _, _, at, _ in recorder.calls} == {T0}
    waits = [later[3] - earlier[3] for earlier, later in zip(recorder.calls, recorder.calls[1:], strict=False)]
    assert waits[0] >= 0.02 and waits[1] >= 0.04 and waits[2] >= 0.05  # doubled, then capped
    alerts.close()


def test_an_alert_whose_commit_came_back_as_an_error_is_recorded_once() -> None:
    store = LedgerStore(env=persistence_env("memory://"))
    service = AlertService(store, None, [], StubBackend(), dedup_seconds=600, clock=Clock(), compose=str)
    real_save, saves = store.save, []

    def commit_then_report_failure(*objs: Any, **kwargs: Any) -> Any:
        saves.append(1)
        recordings = real_save(*objs, **kwargs)
        if len(saves) == 1:  # the server committed; the connection dropped before the answer came back
            raise OperationalError("server closed the connection unexpectedly")
        return recordings

    store.save = commit_then_report_failure  # type: ignore[method-assign]
    service.later.first_wait = 0.01
    service.later.put("redis_degraded", "redis", "Redis is unreachable")
    assert wait_until(lambda: service.later.pending == 0, GENEROUS, every=0.005)
    assert len(saves) == 2  # tried again, and found it there
    alert = store.repository.get(Alert.create_id("redis_degraded", "redis", int(T0.timestamp()) // 600))
    assert (alert.kind, alert.version) == ("redis_degraded", 1)
    service.later.close()


def test_a_full_queue_drops_the_alert_and_says_so_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    recorder.stuck.clear()
    alerts = AlertQueue(recorder, clock=Clock(), size=2)
    for number in range(4):  # the thread takes the first, two wait, the fourth has no room
        alerts.put("unknown_order", f"order-{number}", "unknown order")
        if number == 0:
            assert wait_until(lambda: recorder.entered == 1, GENEROUS, every=0.005)
    assert any("dropped unknown_order order-3" in r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR)
    recorder.stuck.set()
    assert wait_until(lambda: alerts.pending == 0, GENEROUS, every=0.005)
    assert [key for _, key, _, _ in recorder.calls] == ["order-0", "order-1", "order-2"]
    alerts.close()


def test_closing_gives_a_waiting_alert_one_more_try_then_stops_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(failures=100)
    alerts = AlertQueue(recorder, clock=Clock(), first_wait=60.0)
    alerts.put("redis_degraded", "redis", "Redis is unreachable")
    # Failed once, now waits a minute for the next try.
    assert wait_until(lambda: len(recorder.calls) == 1, GENEROUS, every=0.005)
    started = time.monotonic()
    alerts.close()
    assert time.monotonic() - started < 1.0
    assert len(recorder.calls) == 2 and alerts.pending == 0
    assert not alerts.running
    assert any("not recorded" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    alerts.put("redis_degraded", "redis", "Redis is unreachable")  # after shutdown: logged, not queued
    assert alerts.pending == 0
