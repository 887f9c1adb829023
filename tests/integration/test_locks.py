"""The per-order lock against the real shared Redis, a private Redis the test may stop, and the local twin."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from ledger.adapters.locks.local import LocalOrderLock
from ledger.adapters.locks.redis import RedisOrderLock
from ledger.domain.errors import LockTimeout
from ledger.service.ports import OrderLock
from tests.support.private_redis import PrivateRedis
from tests.support.services import redis_client
from tests.support.waiting import wait_until

GENEROUS = 10.0  # seconds; reached only when something is broken, so it costs nothing when tests pass




def lock_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [record for record in caplog.records
            if record.name.startswith("ledger.adapters.locks") and record.levelno == level]


class OrderLockContract:
    """What every OrderLock adapter does; a subclass provides `make_lock(wait_seconds=...)`."""

    @pytest.fixture
    def make_lock(self) -> Callable[..., OrderLock]:
        raise NotImplementedError

    def test_a_second_holder_of_an_order_waits_until_the_first_releases(self, make_lock):
        lock = make_lock(wait_seconds=GENEROUS)
        events: list[str] = []
        first_in, let_first_go, second_in = threading.Event(), threading.Event(), threading.Event()

        def first() -> None:
            with lock.hold("order-1"):
                events.append("first in")
                first_in.set()
                let_first_go.wait(GENEROUS)
                events.append("first out")

        def second() -> None:
            with lock.hold("order-1"):
                events.append("second in")
                second_in.set()

        with ThreadPoolExecutor(2) as pool:
            first_done = pool.submit(first)
            assert first_in.wait(GENEROUS)
            second_done = pool.submit(second)
            # A working lock never lets the second in here, however slow the machine: this can't pass wrongly.
            assert not second_in.wait(0.3)
            let_first_go.set()
            first_done.result(GENEROUS)
            second_done.result(GENEROUS)
        assert events == ["first in", "first out", "second in"]

    def test_holders_of_one_order_never_overlap(self, make_lock):
        lock = make_lock(wait_seconds=GENEROUS * 3)
        guard, inside, most_inside = threading.Lock(), [0], [0]
        start = threading.Barrier(6)

        def worker() -> None:
            start.wait(GENEROUS)
            for _ in range(10):
                with lock.hold("order-1"):
                    with guard:
                        inside[0] += 1
                        most_inside[0] = max(most_inside[0], inside[0])
                    time.sleep(0.001)  # widens the window an overlap would need; asserts nothing
                    with guard:
                        inside[0] -= 1

        with ThreadPoolExecutor(6) as pool:
            for done in [pool.submit(worker) for _ in range(6)]:
                done.result(GENEROUS * 6)
        assert most_inside[0] == 1

    def test_different_orders_do_not_wait_for_each_other(self, make_lock):
        lock = make_lock(wait_seconds=0.1)
        with lock.hold("order-1") as first, lock.hold("order-2") as second:
            assert not first.degraded
            assert not second.degraded

    def test_waiting_longer_than_wait_seconds_raises_lock_timeout(self, make_lock):
        lock = make_lock(wait_seconds=0.1)
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            with lock.hold("order-1"):
                held.set()
                release.wait(GENEROUS)

        with ThreadPoolExecutor(1) as pool:
            holder_done = pool.submit(holder)
            try:
                assert held.wait(GENEROUS)
                with pytest.raises(LockTimeout), lock.hold("order-1"):
                    pytest.fail("entered an order another thread holds")
            finally:
                release.set()
            holder_done.result(GENEROUS)
        with lock.hold("order-1") as hold:
            assert not hold.degraded

    def test_a_clean_hold_is_neither_degraded_nor_expired(self, make_lock):
        lock = make_lock(wait_seconds=0.1)
        with lock.hold("order-1") as hold:
            pass
        assert (hold.degraded, hold.expired) == (False, False)
        assert lock.status()["degraded"] is False

    def test_an_error_in_the_holder_propagates_and_releases_the_order(self, make_lock):
        lock = make_lock(wait_seconds=0.1)
        with pytest.raises(ValueError), lock.hold("order-1"):
            raise ValueError("decided badly")
        with lock.hold("order-1") as hold:
            assert not hold.degraded

    def test_a_batch_takes_the_free_orders_and_reports_the_busy_ones_without_waiting(self, make_lock):
        lock = make_lock(wait_seconds=0.1)
        with lock.hold("order-2"):
            batch = lock.take_many({"order-1", "order-2", "order-3"})
            assert (batch.held, batch.busy, batch.degraded) == ({"order-1", "order-3"}, {"order-2"}, False)
            with pytest.raises(LockTimeout), lock.hold("order-1"):
                pytest.fail("entered an order a batch holds")
        lock.release_many(batch)
        with lock.hold("order-1"), lock.hold("order-3"):
            pass

    def test_the_next_batch_hands_back_the_last_ones_locks_as_it_takes_its_own(self, make_lock):
        lock = make_lock(wait_seconds=0.1)
        first = lock.take_many({"order-1", "order-2"})
        second = lock.take_many({"order-2", "order-3"}, release=first)
        assert (second.held, second.busy) == ({"order-2", "order-3"}, set())
        assert first.expired == 0
        with lock.hold("order-1"):  # released by the swap
            pass
        with pytest.raises(LockTimeout), lock.hold("order-2"):  # taken again, by the second batch
            pytest.fail("entered an order the second batch holds")
        lock.release_many(second)
        lock.release_many(second)  # a second release of the same hold changes nothing
        with lock.hold("order-2"), lock.hold("order-3"):
            pass


    def test_batches_taken_on_an_event_loop_exclude_and_hand_back_as_on_a_thread(self, make_lock):
        asyncio.run(_batches_on_a_loop(make_lock(wait_seconds=0.1)))


async def _batches_on_a_loop(lock: OrderLock) -> None:
    on_loop = lock.on_loop()
    try:
        with lock.hold("order-2"):
            first = await on_loop.take_many({"order-1", "order-2"})
            assert (first.held, first.busy, first.degraded) == ({"order-1"}, {"order-2"}, False)
            with pytest.raises(LockTimeout), lock.hold("order-1"):
                pytest.fail("entered an order a batch on the loop holds")
        second = await on_loop.take_many({"order-3"}, release=first)
        assert second.held == {"order-3"}
        with lock.hold("order-1"):  # handed back by the second batch's taking
            pass
        await on_loop.release_many(second)
        with lock.hold("order-3"):
            pass
    finally:
        await on_loop.close()


class TestRedisOrderLock(OrderLockContract):
    @pytest.fixture
    def client(self, redis_url: str) -> Iterator[redis.Redis]:
        client = redis_client(redis_url)
        yield client
        client.close()

    @pytest.fixture
    def make_lock(self, client: redis.Redis, redis_prefix: str, redis_url: str) -> Callable[..., RedisOrderLock]:
        def make(*, wait_seconds: float, ttl_seconds: float = 30.0, on_a_loop: bool = True) -> RedisOrderLock:
            return RedisOrderLock(
                client, prefix=redis_prefix, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds,
                async_client=(lambda: redis.asyncio.Redis.from_url(redis_url)) if on_a_loop else None,
            )

        return make

    def test_without_an_async_client_a_loop_takes_batches_through_the_sync_one(self, make_lock):
        asyncio.run(_batches_on_a_loop(make_lock(wait_seconds=0.1, on_a_loop=False)))

    def test_the_key_carries_the_prefix_and_is_removed_on_release(self, make_lock, client, redis_prefix):
        lock = make_lock(wait_seconds=0.1)
        with lock.hold("order-1"):
            assert list(client.scan_iter(match=f"{redis_prefix}*")) == [
                f"{redis_prefix}:lock:order-1".encode()
            ]
            assert 0 < client.pttl(f"{redis_prefix}:lock:order-1") <= 30_000
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []

    def test_no_key_outlives_its_hold(self, make_lock, client, redis_prefix):
        lock = make_lock(wait_seconds=0.1)
        for number in range(200):
            with lock.hold(f"order-{number}"):
                pass
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []

    def test_an_expired_lock_lets_the_next_holder_in_and_its_first_holder_learns_it(
        self, make_lock, client, redis_prefix, caplog
    ):
        key = f"{redis_prefix}:lock:order-1"
        short_lived = make_lock(wait_seconds=GENEROUS, ttl_seconds=0.2)
        long_lived = make_lock(wait_seconds=0.1)
        with ExitStack() as second_scope:
            with short_lived.hold("order-1") as first:
                assert wait_until(lambda: not client.exists(key), GENEROUS)
                second = second_scope.enter_context(long_lived.hold("order-1"))
                second_token = client.get(key)
                assert second_token is not None
            assert first.expired
            assert client.get(key) == second_token, "the first holder's exit deleted the second's lock"
            assert len(lock_records(caplog, logging.WARNING)) == 1
        assert not second.expired
        assert not client.exists(key)

    def test_a_batch_learns_which_of_its_locks_expired_and_never_deletes_a_later_holders(
        self, make_lock, client, redis_prefix, caplog
    ):
        short_lived, other = make_lock(wait_seconds=0.1, ttl_seconds=0.2), make_lock(wait_seconds=0.1)
        batch = short_lived.take_many({"order-1", "order-2"})
        assert wait_until(lambda: not client.exists(f"{redis_prefix}:lock:order-1"), GENEROUS)
        with other.hold("order-1"):
            token = client.get(f"{redis_prefix}:lock:order-1")
            short_lived.release_many(batch)
            assert batch.expired == 2
            assert client.get(f"{redis_prefix}:lock:order-1") == token
        assert len(lock_records(caplog, logging.WARNING)) == 1
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []

    def test_status_names_the_redis_backend(self, make_lock):
        status = make_lock(wait_seconds=0.1).status()
        assert (status["backend"], status["degraded"]) == ("redis", False)
        assert isinstance(status["detail"], str)


class TestRedisOrderLockWithoutRedis:
    @pytest.fixture
    def client(self, private_redis: PrivateRedis) -> Iterator[redis.Redis]:
        client = redis_client(private_redis.url)
        yield client
        client.close()

    @pytest.fixture
    def lock(self, client: redis.Redis) -> RedisOrderLock:
        # recheck_seconds=0: ask Redis on every hold, so recovery shows at the first hold after start().
        return RedisOrderLock(client, prefix="ledger-test", ttl_seconds=30, wait_seconds=1, recheck_seconds=0)

    def test_an_unreachable_redis_gives_a_degraded_hold_instead_of_an_error(self, lock, private_redis):
        private_redis.stop()
        with lock.hold("order-1") as hold:
            assert hold.degraded
        status = lock.status()
        assert (status["backend"], status["degraded"]) == ("redis", True)
        assert "unreachable" in status["detail"]

    def test_outage_and_recovery_are_each_logged_once(self, lock, private_redis, caplog):
        caplog.set_level(logging.INFO, logger="ledger.adapters.locks")
        private_redis.stop()
        for _ in range(3):
            with lock.hold("order-1") as hold:
                assert hold.degraded
        private_redis.start()
        for _ in range(3):
            with lock.hold("order-1") as hold:
                assert not hold.degraded
        assert len(lock_records(caplog, logging.WARNING)) == 1
        assert len(lock_records(caplog, logging.INFO)) == 1
        assert lock.status()["degraded"] is False

    def test_after_a_failure_redis_is_left_alone_until_the_recheck_time(self, client, private_redis):
        lock = RedisOrderLock(
            client, prefix="ledger-test", ttl_seconds=30, wait_seconds=1, recheck_seconds=60
        )
        private_redis.stop()
        with lock.hold("order-1") as hold:
            assert hold.degraded
        private_redis.start()
        with lock.hold("order-1") as hold:
            assert hold.degraded
        assert client.exists("ledger-test:lock:order-1") == 0

    def test_an_outage_noticed_on_a_loop_then_on_a_thread_is_reported_once(self, client, private_redis):
        # on_degraded runs where the outage is noticed, the serving loop included (so it must return at once).
        noticed: list[tuple[Exception, bool]] = []

        def on_degraded(exc: Exception) -> None:
            try:
                asyncio.get_running_loop()
                noticed.append((exc, True))
            except RuntimeError:
                noticed.append((exc, False))

        lock = RedisOrderLock(client, prefix="ledger-test", ttl_seconds=30, wait_seconds=1, recheck_seconds=0,
                              on_degraded=on_degraded, async_client=lambda: redis.asyncio.Redis.from_url(
                                  private_redis.url, socket_connect_timeout=0.5, socket_timeout=0.5,
                                  retry=AsyncRetry(NoBackoff(), 1)))
        private_redis.stop()

        async def batches() -> None:
            on_loop = lock.on_loop()
            try:
                for _ in range(3):
                    assert (await on_loop.take_many({"order-1"})).degraded
            finally:
                await on_loop.close()

        asyncio.run(batches())
        with lock.hold("order-1") as hold:
            assert hold.degraded
        assert [on_a_loop for _, on_a_loop in noticed] == [True]
        assert isinstance(noticed[0][0], redis.ConnectionError)

    def test_a_batch_without_redis_is_degraded_and_holds_every_order(self, lock, private_redis):
        private_redis.stop()
        batch = lock.take_many({"order-1", "order-2"})
        assert (batch.degraded, batch.held, batch.busy) == (True, {"order-1", "order-2"}, set())
        lock.release_many(batch)

    def test_losing_redis_while_holding_does_not_fail_the_release(self, lock, private_redis, caplog):
        with lock.hold("order-1") as hold:
            private_redis.stop()
        assert (hold.degraded, hold.expired) == (False, False)
        assert len(lock_records(caplog, logging.WARNING)) >= 1
        assert lock.status()["degraded"] is True


class TestLocalOrderLock(OrderLockContract):
    @pytest.fixture
    def make_lock(self) -> Callable[..., LocalOrderLock]:
        return lambda *, wait_seconds: LocalOrderLock(wait_seconds=wait_seconds)

    def test_an_order_is_forgotten_once_nobody_holds_or_waits_for_it(self):
        lock = LocalOrderLock(wait_seconds=0.1)
        for number in range(10_000):
            with lock.hold(f"order-{number}"):
                assert lock.tracked_keys == 1
        assert lock.tracked_keys == 0

    def test_a_waiter_that_timed_out_leaves_nothing_behind(self):
        lock = LocalOrderLock(wait_seconds=0.05)

        def wait_in_vain() -> None:
            with lock.hold("order-1"):
                pytest.fail("entered an order another thread holds")

        with lock.hold("order-1"), ThreadPoolExecutor(1) as pool:
            with pytest.raises(LockTimeout):
                pool.submit(wait_in_vain).result(GENEROUS)
            assert lock.tracked_keys == 1
        assert lock.tracked_keys == 0

    def test_status_names_the_local_backend(self):
        status = LocalOrderLock(wait_seconds=0.1).status()
        assert (status["backend"], status["degraded"]) == ("local", False)
