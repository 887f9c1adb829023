"""The operators' and the gauges' reads of the read model (projections.queries.operations, .gauges) on rows
written straight into the tables, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.adapters.sql.engine import make_engine
from ledger.adapters.sql.migrations import migrate
from ledger.domain import outbox
from projections.queries import gauges
from projections.queries.operations import alert_counts, alerts_not_sent_to, alerts_unsent, deliveries_due, manual_queue
from projections.tables import alerts, deliveries

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GRACE, LEASE = timedelta(seconds=30), timedelta(seconds=60)


def delivery(order: str, state: str, *, updated: timedelta = timedelta(0), retry_at: timedelta | None = None,
             started: timedelta | None = None, change: str = "payment") -> dict[str, Any]:
    """A deliveries row whose times are NOW minus the given ages."""
    return {"order_id": order, "change": change, "app_id": "2021000000000001", "auth_app_id": "",
            "out_trade_no": f"T-{order}", "state": state, "attempts": 1, "last_error": "",
            "updated_at": NOW - updated, "next_retry_at": None if retry_at is None else NOW - retry_at,
            "started_at": None if started is None else NOW - started}


def alert(alert_id: str, kind: str, sent_to: str = "", *, age: int = 0, status: str | None = None) -> dict[str, Any]:
    return {"alert_id": alert_id, "kind": kind, "key": alert_id, "message": "m", "sent_to": sent_to,
            "raised_at": NOW - timedelta(minutes=age), "status": status or ("sent" if sent_to else "waiting")}


class ReadModelQueriesContract:
    @pytest.fixture
    def database_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def engine(self, database_url: str) -> Iterator[sa.Engine]:
        migrate(database_url)
        engine = make_engine(database_url)
        yield engine
        engine.dispose()

    def insert(self, engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)

    def test_the_manual_queue_lists_the_abandoned_deliveries_oldest_first(self, engine: sa.Engine) -> None:
        self.insert(engine, deliveries, [delivery("b", outbox.ABANDONED, updated=timedelta(minutes=1)),
                                         delivery("a", outbox.ABANDONED, updated=timedelta(minutes=5)),
                                         delivery("c", outbox.FAILED, retry_at=timedelta(0)),
                                         delivery("d", outbox.RESOLVED)])
        rows = manual_queue(engine)
        assert [(row["order_id"], row["state"]) for row in rows] == [("a", "abandoned"), ("b", "abandoned")]
        assert rows[0]["updated_at"] == NOW - timedelta(minutes=5)

    def test_deliveries_whose_message_looks_lost_are_due_and_the_others_are_not(self, engine: sa.Engine) -> None:
        self.insert(engine, deliveries, [
            delivery("retry-overdue", outbox.FAILED, retry_at=GRACE),
            delivery("retry-soon", outbox.FAILED, retry_at=GRACE - timedelta(seconds=1)),
            delivery("lease-over", outbox.IN_FLIGHT, started=LEASE),
            delivery("lease-running", outbox.IN_FLIGHT, started=LEASE - timedelta(seconds=1)),
            delivery("pending-long", outbox.PENDING, updated=GRACE),
            delivery("retry-asked-long", outbox.RETRY_REQUESTED, updated=GRACE),
            delivery("pending-just-now", outbox.PENDING, updated=timedelta(seconds=1)),
            delivery("abandoned", outbox.ABANDONED, updated=timedelta(hours=1)),
            delivery("done", outbox.SUCCEEDED, updated=timedelta(hours=1))])
        due = deliveries_due(engine, now=NOW, grace=GRACE, lease=LEASE)
        assert sorted(due) == [("lease-over", "payment"), ("pending-long", "payment"),
                               ("retry-asked-long", "payment"), ("retry-overdue", "payment")]
        assert len(deliveries_due(engine, now=NOW, grace=GRACE, lease=LEASE, limit=2)) == 2

    def test_alert_counts_are_by_kind_with_the_last_raised_and_those_no_robot_has(self, engine: sa.Engine) -> None:
        assert alert_counts(engine) == {"by_kind": {}, "waiting_to_be_sent": 0, "no_robots": 0}
        self.insert(engine, alerts, [alert("1", "anomaly", age=10), alert("2", "anomaly", "dingtalk", age=2),
                                     alert("3", "delivery_abandoned", "dingtalk,wecom", age=5)])
        assert alert_counts(engine) == {
            "by_kind": {"anomaly": {"count": 2, "last_raised_at": NOW - timedelta(minutes=2)},
                        "delivery_abandoned": {"count": 1, "last_raised_at": NOW - timedelta(minutes=5)}},
            "waiting_to_be_sent": 1, "no_robots": 0}
        self.insert(engine, alerts, [alert("4", "anomaly", age=1, status="no_robots")])
        assert alert_counts(engine)["no_robots"] == 1
        assert alert_counts(engine)["waiting_to_be_sent"] == 1  # an alert with no robot to go to is not waiting
        assert alerts_unsent(engine) == 1

    def test_the_alerts_a_robot_has_not_had_come_newest_first_up_to_the_limit(self, engine: sa.Engine) -> None:
        self.insert(engine, alerts, [alert("old", "anomaly", age=9), alert("new", "anomaly", "wecom", age=1),
                                     alert("mid", "anomaly", age=5), alert("had", "anomaly", "dingtalk,wecom")])
        assert alerts_not_sent_to(engine, "dingtalk", limit=10) == ["new", "mid", "old"]
        assert alerts_not_sent_to(engine, "dingtalk", limit=2) == ["new", "mid"]
        assert alerts_not_sent_to(engine, "wecom", limit=10) == ["mid", "old"]

    def test_the_gauges_count_deliveries_by_state_the_manual_queue_and_alerts_by_kind(self,
                                                                                     engine: sa.Engine) -> None:
        assert gauges.counts(engine) == gauges.Counts({}, 0, {})
        self.insert(engine, deliveries, [delivery("a", outbox.ABANDONED), delivery("b", outbox.ABANDONED),
                                         delivery("c", outbox.SUCCEEDED)])
        self.insert(engine, alerts, [alert("1", "anomaly"), alert("2", "delivery_abandoned")])
        assert gauges.counts(engine) == gauges.Counts({"abandoned": 2, "succeeded": 1}, 2,
                                                      {"anomaly": 1, "delivery_abandoned": 1})


class TestReadModelQueriesOnSQLite(ReadModelQueriesContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestReadModelQueriesOnPostgres(ReadModelQueriesContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
