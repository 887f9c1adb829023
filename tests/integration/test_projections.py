"""Projections into SQL tables: exactly once across crashes and concurrent runners, rebuild equals
incremental row for row, and the journal always balances. On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger.adapters.bills.sql import metadata as bill_files_metadata
from ledger.adapters.refusals.rejections import metadata as rejections_metadata
from ledger.adapters.sql.engine import make_engine
from ledger.adapters.sql.migrations import downgrade, migrate, pending
from ledger.bootstrap import Ledger
from projections import all_projections
from projections.runner import ProjectionRunner
from projections.tables import PROJECTED, journal_entries, metadata, order_status
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.histories import feed_history, snapshot


def event_count(ledger: Ledger, kind: str) -> int:
    return sum(1 for n in ledger.store.recorder.select_notifications(0, 100_000) if n.topic.endswith("." + kind))


class Crash(Exception):
    pass


class CrashOn:
    """Wraps a projection: writes the events before its n-th, then raises, as a process killed between two
    events would stop."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n, self.name, self.tables, self.seen = inner, n, inner.name, inner.tables, 0

    def apply(self, conn: sa.Connection, events: list[tuple[int, Any]]) -> None:
        before, self.seen = self.seen, self.seen + len(events)
        if before < self.n <= self.seen:
            self.inner.apply(conn, events[:self.n - before - 1])
            raise Crash(f"killed at event {self.n}")
        self.inner.apply(conn, events)


class ProjectionContract:
    @pytest.fixture
    def ledger(self) -> Ledger:
        raise NotImplementedError

    def test_rebuild_equals_the_incrementally_built_tables_row_for_row(self, ledger: Ledger,
                                                                        alipay: SandboxAlipay) -> None:
        feed_history(ledger, alipay, orders=25, seed=1)
        runner = ProjectionRunner(ledger.store, ledger.engine, all_projections(), batch_size=7)
        runner.catch_up()
        feed_history(ledger, alipay, orders=10, seed=2)  # more arrives after a first catch-up
        runner.catch_up()
        incremental = snapshot(ledger.engine)
        assert len(incremental["order_status"]) == 35
        assert len(incremental["callback_log"]) == event_count(ledger, "CallbackReceived")
        runner.rebuild()
        assert snapshot(ledger.engine) == incremental

    def test_order_status_rows_agree_with_the_aggregates(self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        feed_history(ledger, alipay, orders=20, seed=3)
        ledger.runner.catch_up()
        for row in snapshot(ledger.engine)["order_status"]:
            order = ledger.service.get_order(row["app_id"], row["out_trade_no"])
            assert (row["status"], row["refunded_amount"], row["last_version"]) == (
                order.status.value, order.refunded, order.version)
            assert row["paid_amount"] == (order.payment or {}).get("total_amount")
            assert row["callback_count"] == sum(order.deliveries.values())
            assert row["amount_mismatch"] == bool(order.mismatched_amounts)

    def test_every_journal_entry_balances_and_clearing_equals_daily_net(self, ledger: Ledger,
                                                                         alipay: SandboxAlipay) -> None:
        feed_history(ledger, alipay, orders=30, seed=4)
        ledger.runner.catch_up()
        tables = snapshot(ledger.engine)
        entries: dict[int, Decimal] = Counter()
        for line in tables["journal_entries"]:
            entries[line["position"]] += line["amount"]
        assert entries and all(total == 0 for total in entries.values())
        clearing = sum(line["amount"] for line in tables["journal_entries"] if line["account"] == "alipay_clearing")
        assert clearing == sum(day["net_amount"] for day in tables["daily_totals"])
        paid = sum(r["paid_amount"] or 0 for r in tables["order_status"])
        assert sum(d["payments_amount"] for d in tables["daily_totals"]) == paid

    def test_a_crash_between_two_events_neither_loses_nor_doubles_a_row(self, ledger: Ledger,
                                                                         alipay: SandboxAlipay) -> None:
        feed_history(ledger, alipay, orders=12, seed=5)
        projections = all_projections()
        projections[1] = CrashOn(projections[1], n=9)  # callback_log dies mid-batch
        with pytest.raises(Crash):
            ProjectionRunner(ledger.store, ledger.engine, projections, batch_size=5).catch_up()
        # One transaction per step: the projections before the crashed one did not move without it.
        moved = ProjectionRunner(ledger.store, ledger.engine, all_projections()).positions()
        assert len({moved[p.name] for p in all_projections()}) == 1
        restarted = ProjectionRunner(ledger.store, ledger.engine, all_projections(), batch_size=5)
        restarted.catch_up()
        after_crash = snapshot(ledger.engine)
        assert len(after_crash["callback_log"]) == event_count(ledger, "CallbackReceived")
        restarted.rebuild()
        assert snapshot(ledger.engine) == after_crash

    def test_two_runners_at_once_apply_each_event_once(self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        feed_history(ledger, alipay, orders=20, seed=6)
        runners = [ProjectionRunner(ledger.store, ledger.engine, all_projections(), batch_size=4) for _ in range(2)]
        threads = [threading.Thread(target=r.catch_up) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent = snapshot(ledger.engine)
        runners[0].rebuild()
        assert snapshot(ledger.engine) == concurrent

    def test_follower_keeps_the_tables_caught_up_with_new_events(self, ledger: Ledger,
                                                                 alipay: SandboxAlipay) -> None:
        import time

        from ledger.service.application import RecordCallback

        follower = ledger.follower(poll_seconds=0.2)
        follower.start()
        try:
            ledger.service.record_callback(RecordCallback(alipay.body("FOLLOW-1"), "203.0.113.1"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with ledger.engine.connect() as conn:
                    row = conn.execute(sa.select(order_status.c.status)
                                       .where(order_status.c.out_trade_no == "FOLLOW-1")).first()
                if row:
                    break
                time.sleep(0.05)
            assert row is not None and row.status == "PAID"
        finally:
            follower.stop()

    def test_migrations_upgrade_from_empty_match_the_tables_and_downgrade_back(self, ledger: Ledger) -> None:
        url = str(ledger.settings.database_url)
        combined = sa.MetaData()
        for table in [*metadata.tables.values(), *rejections_metadata.tables.values(),
                      *bill_files_metadata.tables.values()]:
            table.to_metadata(combined)
        ours = set(combined.tables)

        def ours_only(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
            # eventsourcing owns its own tables (stored_events, ledger_events, ...)
            return kind != "table" or name in ours

        with ledger.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": ours_only})
            assert compare_metadata(context, combined) == []
        downgrade(url)
        assert pending(url)
        with ledger.engine.connect() as conn:
            assert not set(PROJECTED) & set(sa.inspect(conn).get_table_names())
        migrate(url)
        assert not pending(url)


class TestProjectionsOnSQLite(ProjectionContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url)


class TestProjectionsOnPostgres(ProjectionContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str) -> Ledger:
        return make_ledger(postgres_url)


def test_journal_uses_the_china_standard_time_day_of_the_payment(make_ledger: Callable[..., Ledger],
                                                                  sqlite_url: str, alipay: SandboxAlipay) -> None:
    from ledger.service.application import RecordCallback

    ledger = make_ledger(sqlite_url)
    # 00:10 in Beijing on the 2nd is still the 1st in UTC: finance's day is the 2nd.
    ledger.service.record_callback(RecordCallback(alipay.body("CST-1", gmt_payment="2026-11-02 00:10:00"), ""))
    ledger.runner.catch_up()
    with ledger.engine.connect() as conn:
        days = {str(r.day) for r in conn.execute(sa.select(journal_entries.c.day))}
    assert days == {"2026-11-02"}
    assert APP_ID


def test_a_second_engine_sees_the_same_positions(make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        assert ProjectionRunner(ledger.store, engine, all_projections()).positions() == ledger.runner.positions()
    finally:
        engine.dispose()
