"""After a PostgreSQL restart, each client's first call succeeds as soon as the server answers: the event
store's pool, the SQLAlchemy engine of the projections and the API, and a notification through the service.

A restart ends every connection of the database; the tests do that to their own database
(`end_every_connection`) instead of restarting the shared server. Every pool is full and idle beforehand,
as in a process that has been serving for a while."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from ledger.adapters.eventstore.postgres import FailFastPostgresRecorder
from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.sql.engine import make_engine
from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.ledgers import kinds, record
from tests.support.refs import ref
from tests.support.restarts import end_every_connection, fill_pool

pytestmark = pytest.mark.postgres

AT_ONCE = 1.0  # seconds: a fresh connection is a few milliseconds away; psycopg_pool's backoff took 4 s and more


@pytest.mark.parametrize("rest_seconds", [0.0, 60.0], ids=["each pinged as it is lent", "none pinged"])
def test_the_event_stores_first_call_after_a_restart_gets_a_fresh_connection(
        postgres_url: str, rest_seconds: float) -> None:
    # The production pool (10 connections): psycopg_pool waits 1 s, then 2 s, between failed checks of dead
    # connections, so one call used to get through 4 of them before it gave up, and its retry 4 more.
    store = LedgerStore(env=persistence_env(postgres_url))
    try:
        recorder = store.recorder
        assert isinstance(recorder, FailFastPostgresRecorder)
        # 0: every connection rested long enough to be pinged first; 60: none did, the call itself fails.
        recorder.ping_when_lent.rest_seconds = rest_seconds
        assert fill_pool(store) >= 10
        assert end_every_connection(postgres_url) >= 10
        started = time.monotonic()
        store.ping()
        assert time.monotonic() - started < AT_ONCE
        assert recorder.ping_when_lent.sweeps == 1
    finally:
        store.close()


def test_the_sql_engines_first_query_after_a_restart_gets_a_fresh_connection(postgres_url: str) -> None:
    # SQLAlchemy's pre-ping: a ping that finds a connection dead invalidates the whole pool at once.
    engine = make_engine(postgres_url)
    try:
        with ExitStack() as stack:
            for _ in range(engine.pool.size()):  # type: ignore[attr-defined]
                stack.enter_context(engine.connect()).execute(sa.text("SELECT 1"))
        assert engine.pool.checkedin() == 4  # type: ignore[attr-defined]
        assert end_every_connection(postgres_url) >= 4
        started = time.monotonic()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert time.monotonic() - started < AT_ONCE
    finally:
        engine.dispose()


def test_the_first_notification_after_a_restart_is_recorded_at_once(
        make_ledger: Callable[..., Ledger], postgres_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(postgres_url)
    record(ledger, alipay.body(ref()))  # the group commit holds its connection (the loop's own, or the pool's)
    assert fill_pool(ledger.store) >= 10
    assert end_every_connection(postgres_url) >= 10
    order = ref()
    started = time.monotonic()
    assert record(ledger, alipay.body(order)).status == "PAID"
    assert time.monotonic() - started < AT_ONCE
    assert Counter(kinds(ledger, order)) == Counter(Opened=1, CallbackReceived=1, PaymentConfirmed=1)
