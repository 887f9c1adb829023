"""The group commit's rules and its driver on the in-memory twins (memory store, LocalOrderLock): what a
batch decides when an order is busy elsewhere, locked too long, changed under it, committed though the
commit reported a conflict, refused in strict mode, or when a caller gives up. Milliseconds each."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.locks.holds import ManyHold, lock_key
from ledger.adapters.locks.local import LocalOrderLock
from ledger.adapters.metrics import Metrics
from ledger.domain.errors import LockTimeout, StorageUnavailable, UnknownOrder
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order
from ledger.intake.io import StoreIO
from ledger.intake.loop import GroupCommit
from ledger.intake.rules import BatchRules, Pending
from ledger.service.ports import Recorded, Verified
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.refs import ref
from tests.support.serving_loop import PassThroughIO


@pytest.fixture
def store() -> Iterator[LedgerStore]:
    store = LedgerStore(env=persistence_env("memory://"))
    yield store
    store.close()


@pytest.fixture
def lock() -> LocalOrderLock:
    return LocalOrderLock(wait_seconds=1.0)


def verified(alipay: SandboxAlipay, order: str, params: dict[str, str] | None = None) -> Verified:
    params = params or alipay.params(order)
    return Verified(TradeNotice.from_params(params), params, datetime.now(UTC), "198.51.100.7", uuid.uuid4().hex)


def pending(alipay: SandboxAlipay, order: str, *, wait: float = 1.0, params: dict[str, str] | None = None) -> Pending:
    return Pending(verified(alipay, order, params), time.monotonic() + wait)


class PausedSave(PassThroughIO):
    """Sets `saving` when a batch is about to be saved, and saves it once `proceed` is set."""

    def __init__(self, inner: StoreIO, saving: asyncio.Event, proceed: asyncio.Event) -> None:
        super().__init__(inner)
        self.saving, self.proceed = saving, proceed

    async def save(self, orders: list[Order]) -> int:
        self.saving.set()
        await self.proceed.wait()
        return await self.inner.save(orders)


def rules(store: LedgerStore, io: Any, *, strict: bool = False) -> BatchRules:
    return BatchRules(io, store, require_known_orders=strict, wait_seconds=1.0, metrics=Metrics())


def stored_kinds(store: LedgerStore, order: str) -> list[str]:
    return [type(e).__name__ for e in store.events.get(Order.create_id(APP_ID, order, ""))]


def test_a_batch_saves_every_order_and_answers_each_callback(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    orders = [ref("U") for _ in range(3)]
    decided = asyncio.run(rules(store, StoreIO(store, lock)).commit([pending(alipay, o) for o in orders]))
    assert decided.busy == []
    assert [getattr(answer, "status", answer) for _, answer in decided.answers] == ["PAID"] * 3
    assert all(stored_kinds(store, o) == ["Opened", "CallbackReceived", "PaymentConfirmed"] for o in orders)


def test_an_order_locked_elsewhere_is_deferred_and_the_rest_are_saved(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    busy, free = ref("U"), ref("U")
    elsewhere = lock.take_many({lock_key(APP_ID, busy)})
    decided = asyncio.run(rules(store, StoreIO(store, lock)).commit([pending(alipay, busy), pending(alipay, free)]))
    assert [p.item.notice.out_trade_no for p in decided.busy] == [busy]
    assert [p.item.notice.out_trade_no for p, _ in decided.answers] == [free]
    assert stored_kinds(store, busy) == []
    lock.release_many(elsewhere)


def test_an_order_locked_past_its_deadline_is_answered_lock_timeout(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    order = ref("U")
    elsewhere = lock.take_many({lock_key(APP_ID, order)})
    decided = asyncio.run(rules(store, StoreIO(store, lock)).commit([pending(alipay, order, wait=0.0)]))
    assert decided.busy == [] and isinstance(decided.answers[0][1], LockTimeout)
    lock.release_many(elsewhere)


def test_the_last_batchs_locks_are_kept_until_the_next_batch_or_release(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    batch_rules, order = rules(store, StoreIO(store, lock)), ref("U")

    async def commit_then_release() -> tuple[set[str], set[str]]:
        await batch_rules.commit([pending(alipay, order)])
        kept = lock.take_many({lock_key(APP_ID, order)})  # another holder finds it busy
        await batch_rules.release()
        after = lock.take_many({lock_key(APP_ID, order)})
        taken = set(after.held)
        lock.release_many(after)
        return kept.busy, taken

    assert asyncio.run(commit_then_release()) == ({lock_key(APP_ID, order)}, {lock_key(APP_ID, order)})


def test_after_a_version_conflict_each_order_is_redone_alone_on_the_newer_state(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    contested, bystander = ref("U"), ref("U")
    other = verified(alipay, contested)

    class AnotherWriterFirst(PassThroughIO):
        async def load(self, order_ids: list[Any]) -> dict[Any, Order | None]:
            loaded = await self.inner.load(order_ids)
            # Another process records a copy of the contested order after this batch loaded it.
            order = Order(app_id=APP_ID, out_trade_no=contested)
            order.receive(other.notice, other.params, delivery_id=other.delivery_id, received_at=other.received_at,
                          remote_addr=other.remote_addr)
            store.save(order)
            return loaded

    decided = asyncio.run(rules(store, AnotherWriterFirst(StoreIO(store, lock))).commit(
        [pending(alipay, contested, params=other.params), pending(alipay, bystander)]))
    answers = {p.item.notice.out_trade_no: a for p, a in decided.answers}
    redone = answers[contested]
    assert isinstance(redone, Recorded) and redone.version == 4
    assert redone.duplicate is True  # decided again after the other delivery
    assert Counter(stored_kinds(store, contested)) == {"Opened": 1, "CallbackReceived": 2, "PaymentConfirmed": 1}
    assert stored_kinds(store, bystander) == ["Opened", "CallbackReceived", "PaymentConfirmed"]


def test_a_commit_that_went_through_but_reported_a_conflict_is_answered_and_not_redone(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    class CommittedThenConflict(PassThroughIO):
        async def save(self, orders: list[Order]) -> int:
            await self.inner.save(orders)
            raise IntegrityError("duplicate key value violates unique constraint (retried commit)")

    orders = [ref("U"), ref("U")]
    decided = asyncio.run(rules(store, CommittedThenConflict(StoreIO(store, lock))).commit(
        [pending(alipay, o) for o in orders]))
    assert all(isinstance(a, Recorded) and a.status == "PAID" for _, a in decided.answers)
    assert all(stored_kinds(store, o) == ["Opened", "CallbackReceived", "PaymentConfirmed"] for o in orders)


def test_strict_mode_refuses_an_unregistered_order_and_records_nothing(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    order = ref("U")
    decided = asyncio.run(rules(store, StoreIO(store, lock), strict=True).commit([pending(alipay, order)]))
    assert isinstance(decided.answers[0][1], UnknownOrder)
    assert stored_kinds(store, order) == []


def test_a_caller_that_gives_up_fails_no_other_callback_of_its_batch(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    started, proceed = asyncio.Event(), asyncio.Event()  # proceed: once one of the two callers has given up
    intake = GroupCommit(lambda: PausedSave(StoreIO(store, lock), started, proceed), store,
                         require_known_orders=False, wait_seconds=1.0, metrics=Metrics())
    gone, staying = ref("U"), ref("U")

    async def scenario() -> Recorded:
        abandoned = asyncio.ensure_future(intake.record(verified(alipay, gone)))
        waiting = asyncio.ensure_future(intake.record(verified(alipay, staying)))
        await started.wait()
        abandoned.cancel()
        proceed.set()
        try:
            return await waiting
        finally:
            await intake.stop()

    assert asyncio.run(scenario()).status == "PAID"
    assert stored_kinds(store, gone) == stored_kinds(store, staying) == [
        "Opened", "CallbackReceived", "PaymentConfirmed"]


def test_a_callback_that_comes_while_the_intake_stops_is_refused_and_what_came_before_is_committed(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    saving, proceed = asyncio.Event(), asyncio.Event()
    intake = GroupCommit(lambda: PausedSave(StoreIO(store, lock), saving, proceed), store,
                         require_known_orders=False, wait_seconds=1.0, metrics=Metrics())
    first, late = ref("U"), ref("U")

    async def scenario() -> Recorded:
        recorded = asyncio.ensure_future(intake.record(verified(alipay, first)))
        await saving.wait()
        stopping = asyncio.ensure_future(intake.stop())
        await asyncio.sleep(0)  # one turn of the loop: stop() has begun
        with pytest.raises(StorageUnavailable):
            await intake.record(verified(alipay, late))
        proceed.set()
        await stopping
        assert intake.batcher() is None
        return await recorded

    assert asyncio.run(scenario()).status == "PAID"
    assert stored_kinds(store, first) == ["Opened", "CallbackReceived", "PaymentConfirmed"]
    assert stored_kinds(store, late) == []


def test_the_intake_lets_go_of_a_loop_that_has_ended(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    intake = GroupCommit(lambda: StoreIO(store, lock), store, require_known_orders=False, wait_seconds=1.0,
                         metrics=Metrics())
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def scenario() -> Recorded:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await intake.record(verified(alipay, ref("U")))  # no stop(): the loop just ends

    for _ in range(3):
        assert asyncio.run(scenario()).status == "PAID"
    gc.collect()
    assert [loop() for loop in loops] == [None, None, None]


def test_a_lock_release_that_fails_stops_no_later_batch(
        store: LedgerStore, lock: LocalOrderLock, alipay: SandboxAlipay) -> None:
    failures = [ConnectionError("READONLY You can't write against a read only replica")]

    class FailingRelease(PassThroughIO):
        async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
            if not keys and failures:  # handing the last batch's locks back, with nothing to take
                raise failures.pop()
            return await self.inner.swap_locks(keys, release)

    intake = GroupCommit(lambda: FailingRelease(StoreIO(store, lock)), store, require_known_orders=False,
                         wait_seconds=1.0, metrics=Metrics())

    async def scenario() -> list[str]:
        answers = [(await intake.record(verified(alipay, ref("U")))).status]
        batcher = intake.batcher()
        await asyncio.sleep(0)  # the batcher's turn: it hands the locks back, and that fails
        answers.append((await intake.record(verified(alipay, ref("U")))).status)
        assert intake.batcher() is batcher  # the same task goes on
        await intake.stop()
        return answers

    assert asyncio.run(scenario()) == ["PAID", "PAID"]
    assert failures == []
