"""Faults lose nothing and apply nothing twice: an expired lock, Redis stopped, the database cut off."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.adapters.locks.holds import ManyHold
from ledger.bootstrap import Ledger
from ledger.domain.errors import RetryLater
from tests.support.alerts import wait_until_recorded
from tests.support.alipay import SandboxAlipay
from tests.support.ledgers import kinds, record
from tests.support.refs import ref
from tests.support.serving_loop import PassThroughIO, ServingLoop, wrap_io
from tests.support.waiting import wait_until

T = TypeVar("T")


def test_lock_that_expires_mid_work_is_fenced_by_the_version_check(
        make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str, redis_prefix: str,
        alipay: SandboxAlipay) -> None:
    # Two processes' worth of ledger on one database and one Redis: the first one's commit stalls past
    # its lock's TTL while the second takes the lock and commits the same notification.
    env = {"LEDGER_REDIS_URL": redis_url, "LEDGER_REDIS_PREFIX": redis_prefix, "LEDGER_LOCK_TTL_SECONDS": "0.3"}
    slow, fast = make_ledger(postgres_url, **env), make_ledger(postgres_url, **env)
    first_locked, second_done = threading.Event(), threading.Event()

    class Stalled(PassThroughIO):
        async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
            hold = await self.inner.swap_locks(keys, release)
            if keys:
                assert hold.held == keys and not hold.degraded  # the first delivery holds the lock
                first_locked.set()
            return hold

        async def save(self, orders: list[Any]) -> int:
            assert await asyncio.to_thread(second_done.wait, 10)  # past the TTL: the other one got in
            return await self.inner.save(orders)

    wrap_io(slow, Stalled)
    order = ref()
    body = alipay.body(order)

    def second() -> None:
        assert first_locked.wait(10)
        record(fast, body)
        second_done.set()

    other = threading.Thread(target=second)
    other.start()
    result = record(slow, body)
    other.join()
    assert second_done.is_set()
    counts = Counter(kinds(slow, order))
    assert counts["PaymentConfirmed"] == 1 and counts["CallbackReceived"] == 2
    assert result.duplicate is True  # decided again after the conflict, on the other delivery's state


def test_redis_stopped_keeps_accepting_with_the_version_check_alone_and_says_so(
        make_ledger: Callable[..., Ledger], postgres_url: str, private_redis: Any,
        alipay: SandboxAlipay) -> None:
    ledger = make_ledger(postgres_url, LEDGER_REDIS_URL=private_redis.url)
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
        ) -> None:
    direct = urlsplit(postgres_url)
    proxy = tcp_proxy(direct.hostname, direct.port)
    ledger = make_ledger(proxy.url_through(postgres_url))
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
    assert wait_until(lambda: reads_again(ledger))
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


def test_redis_lost_while_the_database_is_down_leaves_the_serving_loop_free_and_the_alert_comes_once(
        make_ledger: Callable[..., Ledger], postgres_url: str, private_redis: Any, tcp_proxy: Any,
        serving_loop: ServingLoop, caplog: pytest.LogCaptureFixture) -> None:
    direct = urlsplit(postgres_url)
    proxy = tcp_proxy(direct.hostname, direct.port)
    # One alert window for the whole test (a day): a second outage within it is the same alert.
    ledger = make_ledger(proxy.url_through(postgres_url), LEDGER_REDIS_URL=private_redis.url,
                         LEDGER_ALERT_DEDUP_SECONDS="86400")
    ledger.store.ping()  # the pool holds live connections through the proxy
    on_loop = serving_loop.run(_on_loop(ledger.lock)).result(10)
    proxy.cut()
    private_redis.stop()
    hold, longest = serving_loop.run(_longest_stall_while(on_loop.take_many({"order-1"}))).result(30)
    assert hold.degraded and ledger.lock.status()["degraded"] is True
    # Raising the alert took the database's time on the loop: 4 s and more, /healthz included.
    assert longest < 0.1
    # The alert thread's first try fails (no database), then it waits and tries again.
    assert wait_until(lambda: any("not recorded yet" in r.getMessage() for r in caplog.records))
    proxy.restore()
    wait_until_recorded(ledger)
    private_redis.start()
    assert ledger.lock.check()["degraded"] is False
    private_redis.stop()
    assert ledger.lock.check()["degraded"] is True  # gone again, within the same window
    wait_until_recorded(ledger)
    raised = [n for n in ledger.store.recorder.select_notifications(1, 100) if n.topic.endswith("AlertRaised")]
    assert len(raised) == 1
    assert ledger.store.repository.get(raised[0].originator_id).kind == "redis_degraded"
    serving_loop.run(on_loop.close()).result(10)


async def _on_loop(lock: Any) -> Any:
    return lock.on_loop()  # its Redis client belongs to the loop that makes it


async def _longest_stall_while(work: Awaitable[T], *, every: float = 0.01, after: float = 0.3) -> tuple[T, float]:
    """Await `work` beside a coroutine ticking every `every` s on the same loop, and `after` s more: what came
    back, and the longest the ticks waited for one another (a blocking call on the loop shows there)."""
    longest, done = 0.0, asyncio.Event()

    async def tick() -> None:
        nonlocal longest
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(every)
            now = time.monotonic()
            longest, last = max(longest, now - last), now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(every * 3)
    result = await work
    await asyncio.sleep(after)
    done.set()
    await ticker
    return result, longest
