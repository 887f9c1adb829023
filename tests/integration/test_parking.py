"""The read side survives any single event: a stream whose events no projection can apply is held back
(parked) after a few tries, every other stream goes on, an operator re-applies it after a fix, and rebuild
does the same. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent

from ledger.bootstrap import Ledger
from ledger.domain.order import Order
from ledger.service.application import RecordCallback, RegisterOrder
from projections.common import Batch
from projections.queries import order_row
from projections.tables import alerts
from tests.support.alerts import wait_until_recorded
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.parking import legacy_order, run_until_parked
from tests.support.refs import ref


def pay(ledger: Ledger, alipay: SandboxAlipay, out_trade_no: str) -> None:
    ledger.service.record_callback(RecordCallback(alipay.body(out_trade_no), "127.0.0.1"))


def kinds_of_alerts(ledger: Ledger) -> list[str]:
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        return list(conn.execute(sa.select(alerts.c.kind)).scalars())


class Poisoned:
    """Wraps a projection: fails on one stream's events (after log position `after`) until `fixed`, as a bug
    that a release then fixes."""

    def __init__(self, inner: Any, stream_id: str, after: int = 0) -> None:
        self.inner, self.stream_id, self.after, self.fixed = inner, stream_id, after, False
        self.name, self.tables = inner.name, inner.tables

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        if not self.fixed and any(str(e.originator_id) == self.stream_id and pos > self.after for pos, e in events):
            raise ValueError("a bug in this projection")
        self.inner.apply(conn, events)


def poison(ledger: Ledger, name: str, stream_id: str, after: int = 0) -> Poisoned:
    assert ledger.runner is not None
    projections = ledger.runner.projections
    inner = next(p for p in projections if p.name == name)
    projections[projections.index(inner)] = poisoned = Poisoned(inner, stream_id, after)
    return poisoned


class ParkingContract:
    @pytest.fixture
    def ledger(self) -> Ledger:
        raise NotImplementedError

    def test_an_event_no_projection_can_store_parks_its_stream_and_every_other_order_goes_on(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        before, after = ref(), ref()
        pay(ledger, alipay, before)
        poison = legacy_order(ledger, ref())
        pay(ledger, alipay, after)
        run_until_parked(ledger)
        assert ledger.runner is not None and ledger.engine is not None
        parked = ledger.runner.parked()
        assert [row["stream_id"] for row in parked] == [poison]
        assert "OverflowError" in parked[0]["error"]
        for order in (before, after):
            row = order_row(ledger.engine, APP_ID, order)
            assert row is not None and row["status"] == "PAID"
        positions = ledger.runner.positions()
        assert len(set(positions.values())) == 1  # every projection, the dispatcher too, passed it
        wait_until_recorded(ledger)  # the alert is recorded by the alert thread: the runner never waits for it
        ledger.runner.catch_up()
        assert "projection_parked" in kinds_of_alerts(ledger)

    def test_a_parked_streams_later_events_wait_with_it_and_are_applied_when_it_is_reapplied(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        assert ledger.runner is not None and ledger.engine is not None
        order = ref()
        ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00")))
        stream = str(Order.create_id(APP_ID, order))
        poisoned = poison(ledger, "order_status", stream)
        other = ref()
        pay(ledger, alipay, other)
        run_until_parked(ledger)
        pay(ledger, alipay, order)  # a later event of the parked order
        ledger.runner.catch_up()
        assert order_row(ledger.engine, APP_ID, order) is None
        assert order_row(ledger.engine, APP_ID, other) is not None
        with pytest.raises(ValueError):
            ledger.runner.reapply(stream)  # not fixed yet: it stays parked, with the error
        assert len(ledger.runner.parked()) == 1
        poisoned.fixed = True
        assert ledger.runner.reapply(stream) >= 4
        assert ledger.runner.parked() == []
        row = order_row(ledger.engine, APP_ID, order)
        assert row is not None and (row["status"], row["registered"]) == ("PAID", True)
        pay(ledger, alipay, order)  # and it goes on as any other
        ledger.runner.catch_up()
        assert order_row(ledger.engine, APP_ID, order)["callback_count"] == 2  # type: ignore[index]

    def test_rebuild_parks_what_it_cannot_apply_and_replays_the_rest(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        assert ledger.runner is not None and ledger.engine is not None
        first, second = ref(), ref()
        pay(ledger, alipay, first)
        poison = legacy_order(ledger, ref())
        pay(ledger, alipay, second)
        assert ledger.runner.rebuild() > 0
        assert [row["stream_id"] for row in ledger.runner.parked()] == [poison]
        assert all(order_row(ledger.engine, APP_ID, o) is not None for o in (first, second))

    def test_rebuild_with_an_amount_mismatch_in_the_log_completes(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        assert ledger.runner is not None and ledger.engine is not None
        order = ref()
        ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00")))
        ledger.service.record_callback(RecordCallback(alipay.body(order, total_amount="99.00"), "127.0.0.1"))
        ledger.runner.catch_up()
        ledger.runner.rebuild()
        row = order_row(ledger.engine, APP_ID, order)
        assert row is not None and row["amount_mismatch"] is True


class HeldBackContract(ParkingContract):
    def test_a_stream_parked_while_the_dispatcher_lags_is_reapplied_without_applying_anything_twice(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        assert ledger.runner is not None and ledger.engine is not None
        order = ref()
        pay(ledger, alipay, order)
        ledger.runner.catch_up()
        applied = ledger.store.ping()
        with ledger.engine.begin() as conn:  # the dispatcher behind the tables (its broker was down, say)
            conn.execute(sa.text("update projection_positions set position = 0 where name = 'dispatcher'"))
        stream = str(Order.create_id(APP_ID, order))
        poisoned = poison(ledger, "callback_log", stream, after=applied)
        pay(ledger, alipay, order)  # a later callback of the same order, which callback_log cannot take
        run_until_parked(ledger)
        assert [row["position"] for row in ledger.runner.parked()] == [applied + 1]
        poisoned.fixed = True
        assert ledger.runner.reapply(stream) == 1  # the later callback only: the first was applied already
        row = order_row(ledger.engine, APP_ID, order)
        assert row is not None and row["callback_count"] == 2
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from callback_log")).scalar_one() == 2

    def test_the_dispatcher_sees_what_a_parked_stream_held_back_once_it_is_reapplied(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        assert ledger.runner is not None
        order = ref()
        ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00")))
        poisoned = poison(ledger, "order_status", str(Order.create_id(APP_ID, order)))
        ledger.service.record_callback(RecordCallback(alipay.body(order, total_amount="99.00"), "127.0.0.1"))
        run_until_parked(ledger)
        wait_until_recorded(ledger)
        ledger.runner.catch_up()
        assert "amount_mismatch" not in kinds_of_alerts(ledger)  # held back with its stream
        poisoned.fixed = True
        ledger.runner.reapply(str(Order.create_id(APP_ID, order)))
        ledger.runner.catch_up()
        assert "amount_mismatch" in kinds_of_alerts(ledger)

    def test_an_event_that_does_not_decode_parks_its_stream_and_the_rest_goes_on(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        assert ledger.runner is not None and ledger.engine is not None
        gone = uuid.uuid4()
        ledger.store.recorder.insert_events([StoredEvent(originator_id=gone, originator_version=1,
                                                         topic="ledger.domain.gone:Gone", state=b"{}")])
        order = ref()
        pay(ledger, alipay, order)
        ledger.runner.catch_up()
        assert [row["stream_id"] for row in ledger.runner.parked()] == [str(gone)]
        assert order_row(ledger.engine, APP_ID, order) is not None
        assert ledger.runner.rebuild() > 0
        assert [row["stream_id"] for row in ledger.runner.parked()] == [str(gone)]
        assert order_row(ledger.engine, APP_ID, order) is not None


class TestParkingOnSQLite(HeldBackContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url)


class TestParkingOnPostgres(HeldBackContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str) -> Ledger:
        return make_ledger(postgres_url)
