"""A failed statement's error, as the projections log it and report it, names its SQL but never its
parameters (they hold buyers' data). On SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from projections.common import Batch
from projections.runner import Follower, ProjectionRunner
from projections.tables import order_status
from tests.support.alipay import SandboxAlipay
from tests.support.refs import ref

BUYER_ID = "2088102177846875"


class WritesTheBuyer:
    """Stands in for a projection whose statement the database refuses, with a buyer's data among its
    parameters."""

    name, tables = "order_status", (order_status,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        for _, event in events:
            if buyer := getattr(event, "params", {}).get("buyer_id"):
                conn.execute(sa.text("INSERT INTO no_such_table (buyer_id) VALUES (:buyer_id)"),
                             {"buyer_id": buyer})


def stalled_error(ledger: Ledger) -> str:
    follower = Follower(ProjectionRunner(ledger.store, ledger.engine, [WritesTheBuyer()]), listen_url=None,
                        channel="unused", poll_seconds=0.05)
    follower.start()
    try:
        deadline = time.monotonic() + 10
        while follower.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        follower.stop()
    assert follower.last_error is not None, "the projection never failed"
    return follower.last_error


class SqlErrorContract:
    @pytest.fixture
    def database_url(self) -> str:
        raise NotImplementedError

    def test_a_stalled_projection_logs_and_reports_its_statement_without_the_buyers_data(
            self, make_ledger: Callable[..., Ledger], database_url: str, alipay: SandboxAlipay,
            caplog: pytest.LogCaptureFixture) -> None:
        ledger = make_ledger(database_url)
        body = alipay.body(ref("Q"), buyer_id=BUYER_ID)
        ledger.service.record_callback(RecordCallback(body=body, remote_addr="198.51.100.7"))
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            reported = stalled_error(ledger)
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "projections.runner")
        assert "no_such_table" in reported and "no_such_table" in logged  # the statement is named...
        assert BUYER_ID not in reported and BUYER_ID not in logged  # ...its parameters are not

    def test_a_failed_statements_error_text_holds_no_parameter_value(self, make_ledger: Callable[..., Ledger],
                                                                     database_url: str) -> None:
        engine = make_ledger(database_url).engine
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO no_such_table (buyer_id) VALUES (:buyer_id)"), {"buyer_id": BUYER_ID})
        assert "no_such_table" in str(caught.value)
        assert BUYER_ID not in str(caught.value) and BUYER_ID not in repr(caught.value)


class TestOnSqlite(SqlErrorContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestOnPostgres(SqlErrorContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
