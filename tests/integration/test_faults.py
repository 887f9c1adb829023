"""Faults lose nothing and apply nothing twice: an expired lock, Redis stopped, the database cut off.

On PostgreSQL each runs twice: through the group commit's thread, and through the serving loop's task."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.bootstrap import Ledger
from ledger.domain.errors import RetryLater
from tests.integration.test_intake import kinds, record, ref
from tests.integration.test_locks import wait_until
from tests.support.alipay import SandboxAlipay
from tests.support.serving_loop import Driver


def test_lock_that_expires_mid_work_is_fenced_by_the_version_check(
        make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str, redis_prefix: str,
        alipay: SandboxAlipay, driver: Driver) -> None:
    # Two processes' worth of ledger on one database and one Redis: the first one's commit stalls past
    # its lock's TTL while the second takes the lock and commits the same notification.
    env = {"LEDGER_REDIS_URL": redis_url, "LEDGER_REDIS_PREFIX": redis_prefix, "LEDGER_LOCK_TTL_SECONDS": "0.3"}
    slow, fast = driver(make_ledger(postgres_url, **env)), make_ledger(postgres_url, **env)
    intake = driver.intake(slow)
    real_save, second_done = intake._save, threading.Event()

    async def stalled_save(orders: list[Any]) -> int:
        if not second_done.is_set():
            assert await asyncio.to_thread(second_done.wait, 10)
        return await real_save(orders)

    intake._save = stalled_save  # type: ignore[method-assign]
    order = ref()
    body = alipay.body(order)

    def second() -> None:
        time.sleep(0.05)  # let the first delivery take the lock first
        record(fast, body)
        second_done.set()

    other = threading.Thread(target=second)
    other.start()
    result = record(slow, body)
    other.join()
    counts = Counter(kinds(slow, order))
    assert counts["PaymentConfirmed"] == 1 and counts["CallbackReceived"] == 2
    assert result.duplicate is True  # decided again after the conflict, on the other delivery's state


def test_redis_stopped_keeps_accepting_with_the_version_check_alone_and_says_so(
        make_ledger: Callable[..., Ledger], postgres_url: str, private_redis: Any,
        alipay: SandboxAlipay, driver: Driver) -> None:
    ledger = driver(make_ledger(postgres_url, LEDGER_REDIS_URL=private_redis.url))
    assert record(ledger, alipay.body(ref())).degraded is False
    private_redis.stop()
    order = ref()
    body = alipay.body(order)
    results: list[Any] = []

    def deliver() -> None:
        try:
            results.append(record(ledger, body))
        except RetryLater as exc:  # bounded conflict retries gave up: Alipay is told to come back
            results.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    successes = [r for r in results if not isinstance(r, Exception)]
    assert len(results) == 20 and successes and all(r.degraded for r in successes)
    counts = Counter(kinds(ledger, order))
    assert counts["PaymentConfirmed"] == 1 and counts["CallbackReceived"] == len(successes)
    assert ledger.lock.check()["degraded"] is True
    private_redis.start()
    assert ledger.lock.check()["degraded"] is False
    assert record(ledger, alipay.body(ref())).degraded is False


def test_database_cut_off_answers_retry_later_records_nothing_and_the_retry_applies_once(
        make_ledger: Callable[..., Ledger], postgres_url: str, tcp_proxy: Any, alipay: SandboxAlipay,
        driver: Driver) -> None:
    from urllib.parse import urlsplit

    direct = urlsplit(postgres_url)
    proxy = tcp_proxy(direct.hostname, direct.port)
    ledger = driver(make_ledger(proxy.url_through(postgres_url)))
    record(ledger, alipay.body(ref()))  # the pool holds live connections through the proxy
    order = ref()
    body = alipay.body(order)
    proxy.cut()
    started = time.monotonic()
    with pytest.raises(RetryLater):
        record(ledger, body)
    # Alipay must hear `fail` while it still listens: eventsourcing's own policy took about a minute.
    assert time.monotonic() - started < 15
    proxy.restore()
    # The event store's pool (what reads the history) reconnects in its own time: seconds, with backoff.
    wait_until(lambda: reads_again(ledger))
    assert kinds(ledger, order) == []
    record(ledger, body)
    record(ledger, body)
    assert Counter(kinds(ledger, order)) == Counter(Opened=1, CallbackReceived=2, PaymentConfirmed=1)


def reads_again(ledger: Ledger) -> bool:
    try:
        ledger.store.ping()
    except PersistenceError:
        return False
    return True


def test_commit_that_went_through_but_came_back_as_a_conflict_is_not_recorded_twice(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url)
    real_save = ledger.store.save
    calls = []

    def commit_then_report_conflict(*items: Any, **kwargs: Any) -> Any:
        # What eventsourcing's own retry does when the connection drops after the server committed.
        calls.append(1)
        real_save(*items, **kwargs)
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")
        return None

    ledger.store.save = commit_then_report_conflict  # type: ignore[method-assign]
    order = ref()
    assert record(ledger, alipay.body(order)).status == "PAID"
    assert kinds(ledger, order) == ["Opened", "CallbackReceived", "PaymentConfirmed"]
