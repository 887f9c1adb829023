"""Group commit on PostgreSQL and Redis: callbacks that arrive together share one save, and still each
order changes exactly once: a conflict, a busy lock, a commit whose answer was lost, a shutdown.

Callbacks are recorded on a serving loop, as `ledger serve` records them; the tests pause, fail or count a
step of a batch by wrapping the group commit's I/O (`wrap_io`). The same rules on the in-memory twins, in
milliseconds: tests/unit/test_batch_rules.py."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.adapters.locks.holds import ManyHold, lock_key
from ledger.bootstrap import Ledger
from ledger.domain.errors import LockTimeout, StorageUnavailable
from ledger.intake.rules import BatchIO
from ledger.service.application import RecordCallback
from ledger.service.ports import Recorded
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.ledgers import kinds, record
from tests.support.refs import ref
from tests.support.services import redis_client
from tests.support.serving_loop import PassThroughIO, ServingLoop, wrap_io
from tests.support.waiting import wait_until


@pytest.fixture
def pg_ledger(make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str,
              redis_prefix: str) -> Callable[..., Ledger]:
    def make(**env: str) -> Ledger:
        return make_ledger(postgres_url, LEDGER_REDIS_URL=redis_url, LEDGER_REDIS_PREFIX=redis_prefix, **env)
    return make


class PausedSaves:
    """Holds every save until released, so that what arrives meanwhile queues up; counts saves."""

    def __init__(self, ledger: Ledger) -> None:
        self.calls, self.release = 0, threading.Event()
        wrap_io(ledger, self.wrap)

    def wrap(self, io: BatchIO) -> BatchIO:
        paused = self

        class Paused(PassThroughIO):
            async def save(self, orders: list[Any]) -> int:
                paused.calls += 1
                assert await asyncio.to_thread(paused.release.wait, 10)
                return await self.inner.save(orders)

        return Paused(io)


@pytest.fixture
def submit(serving_loop: ServingLoop) -> Callable[[Ledger, bytes], Future[Recorded]]:
    """Record a callback on the serving loop, as the HTTP endpoint does; the future is its answer."""
    def submit(ledger: Ledger, body: bytes) -> Future[Recorded]:
        return serving_loop.submit(ledger.service, RecordCallback(body=body, remote_addr="198.51.100.7"))
    return submit


Submit = Callable[[Ledger, bytes], "Future[Recorded]"]


def test_callbacks_that_arrive_together_are_committed_by_one_save(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit) -> None:
    ledger = pg_ledger()
    saves = PausedSaves(ledger)
    first = submit(ledger, alipay.body(ref()))
    while saves.calls == 0:  # the first batch is saving, and waits
        threading.Event().wait(0.01)
    orders = [ref() for _ in range(60)]
    futures = [submit(ledger, alipay.body(order)) for order in orders]
    saves.release.set()
    assert first.result(10).status == "PAID"
    assert all(f.result(10).status == "PAID" for f in futures)
    # One save for the first callback; the 60 queued meanwhile went in one or two more.
    assert saves.calls <= 3
    assert all(kinds(ledger, order) == ["Opened", "CallbackReceived", "PaymentConfirmed"] for order in orders)


def test_a_conflicting_order_is_redone_alone_and_fails_no_other_order_of_its_batch(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit) -> None:
    ledger, other_process = pg_ledger(), pg_ledger()
    contested, bystanders = ref(), [ref() for _ in range(5)]
    saves = PausedSaves(ledger)
    futures = [submit(ledger, alipay.body(order)) for order in [contested, *bystanders]]
    while saves.calls == 0:
        threading.Event().wait(0.01)
    # The batch has loaded and decided; another process commits to one of its orders first (its lock
    # expired, or Redis was down): the batch's save is refused by the version check.
    wrap_io(other_process, WithoutTheLock)
    record(other_process, alipay.body(contested))
    saves.release.set()
    results = [f.result(10) for f in futures]
    assert [r.status for r in results] == ["PAID"] * 6
    assert results[0].version == 4  # decided again on the newer state: after the other process's three
    assert Counter(kinds(ledger, contested)) == {"Opened": 1, "CallbackReceived": 2, "PaymentConfirmed": 1}
    assert all(kinds(ledger, order) == ["Opened", "CallbackReceived", "PaymentConfirmed"] for order in bystanders)
    # The refused insert left no transaction open on the connection: the next batch goes through.
    assert submit(ledger, alipay.body(ref())).result(10).status == "PAID"


def test_a_batch_whose_commit_went_through_but_reported_a_conflict_is_not_recorded_twice(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit) -> None:
    # After a dropped connection the library retries a commit that the server had made: the retry hits
    # the unique key. The batch must answer success, not redo (and duplicate) every callback.
    ledger = pg_ledger()
    raised = []

    class CommittedThenConflict(PassThroughIO):
        async def save(self, orders: list[Any]) -> int:
            position = await self.inner.save(orders)
            if not raised:
                raised.append(True)
                raise IntegrityError("duplicate key value violates unique constraint (retried commit)")
            return position

    wrap_io(ledger, CommittedThenConflict)
    orders = [ref() for _ in range(4)]
    futures = [submit(ledger, alipay.body(order)) for order in orders]
    assert all(f.result(10).status == "PAID" for f in futures)
    assert raised
    assert all(kinds(ledger, order) == ["Opened", "CallbackReceived", "PaymentConfirmed"] for order in orders)


def test_an_order_locked_elsewhere_waits_for_a_later_batch_without_holding_up_the_others(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, redis_prefix: str, submit: Submit) -> None:
    ledger = pg_ledger()
    locked, free = ref(), ref()

    held, release = threading.Event(), threading.Event()

    def hold_elsewhere() -> None:
        with ledger.lock.hold(lock_key(APP_ID, locked)):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_elsewhere)
    holder.start()
    assert held.wait(5)
    waiting = submit(ledger, alipay.body(locked))
    assert submit(ledger, alipay.body(free)).result(10).status == "PAID"
    assert not waiting.done()
    release.set()
    holder.join()
    assert waiting.result(10).status == "PAID"
    assert kinds(ledger, locked) == ["Opened", "CallbackReceived", "PaymentConfirmed"]


def test_a_batch_keeps_its_locks_only_until_the_next_batch_or_until_none_comes(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, redis_url: str, redis_prefix: str,
        submit: Submit) -> None:
    # Locks are handed back with the next batch's taking them, in one round trip; when nothing more
    # arrives they are released at once, not left to expire (another process would wait the whole TTL).
    ledger = pg_ledger()
    order = ref()
    assert submit(ledger, alipay.body(order)).result(10).status == "PAID"
    client = redis_client(redis_url)
    try:
        wait_until(lambda: not list(client.scan_iter(match=f"{redis_prefix}:lock:*")))
    finally:
        client.close()
    with ledger.lock.hold(lock_key(APP_ID, order)) as hold:
        assert not hold.degraded


def test_an_order_locked_for_longer_than_the_wait_is_answered_retry_later_and_not_recorded(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit) -> None:
    ledger = pg_ledger(LEDGER_LOCK_WAIT_MS="300")
    order = ref()

    with ledger.lock.hold(lock_key(APP_ID, order)), pytest.raises(LockTimeout):
        submit(ledger, alipay.body(order)).result(10)
    assert kinds(ledger, order) == []


def test_close_commits_what_was_queued_and_refuses_what_comes_after(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit, serving_loop: ServingLoop) -> None:
    ledger = pg_ledger()
    saves = PausedSaves(ledger)
    orders = [ref() for _ in range(10)]
    futures = [submit(ledger, alipay.body(order)) for order in orders]

    def shut_down() -> None:  # as the server does: refuse what comes, commit what came
        ledger.service.close()
        serving_loop.stop(ledger.service)

    closing = threading.Thread(target=shut_down)
    closing.start()
    saves.release.set()
    closing.join(15)
    assert not closing.is_alive()
    assert all(f.result(1).status == "PAID" for f in futures)
    with pytest.raises(StorageUnavailable):
        submit(ledger, alipay.body(ref())).result(1)


class WithoutTheLock(PassThroughIO):
    """A process that lost the race for the lock: it writes as if it held it."""

    async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
        return ManyHold(held=set(keys))


def test_a_callback_that_arrives_while_the_loop_releases_the_last_locks_is_not_left_waiting(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit) -> None:
    # The loop's task releases the last batch's locks when the queue runs dry, awaiting Redis: a callback
    # queued meanwhile must still be taken, not wait for the next one to wake the task.
    ledger = pg_ledger()
    releasing, late_queued = threading.Event(), threading.Event()

    class SlowRelease(PassThroughIO):
        async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
            if not keys and release is not None:  # handing back the last batch's locks, nothing to take
                releasing.set()
                assert await asyncio.to_thread(late_queued.wait, 10)
            return await self.inner.swap_locks(keys, release)

    wrap_io(ledger, SlowRelease)
    assert submit(ledger, alipay.body(ref())).result(10).status == "PAID"
    assert releasing.wait(5)
    late = submit(ledger, alipay.body(ref()))  # queued while the release is under way
    late_queued.set()
    assert late.result(5).status == "PAID"


def test_a_caller_that_gives_up_waiting_fails_no_other_callback_of_its_batch(
        pg_ledger: Callable[..., Ledger], alipay: SandboxAlipay, submit: Submit) -> None:
    # An HTTP client that hangs up has its request cancelled: its callback is still recorded (Alipay will
    # send it again, and that copy is a duplicate), and answering the rest of its batch must not trip on it.
    ledger = pg_ledger()
    saves = PausedSaves(ledger)
    first = submit(ledger, alipay.body(ref()))
    while saves.calls == 0:  # the first batch is saving: the next two queue up as one batch
        threading.Event().wait(0.01)
    gone, staying = ref(), ref()
    abandoned = submit(ledger, alipay.body(gone))
    waiting = submit(ledger, alipay.body(staying))
    threading.Event().wait(0.1)
    assert abandoned.cancel()
    saves.release.set()
    assert first.result(10).status == waiting.result(10).status == "PAID"
    assert saves.calls == 2
    assert kinds(ledger, gone) == kinds(ledger, staying) == ["Opened", "CallbackReceived", "PaymentConfirmed"]
