"""End to end over HTTP, on SQLite and on PostgreSQL: what clients that wait, and open endpoints that anyone may
flood, cost everyone else: a read-your-write wait holds no thread of the shared pool, and `/readyz` and
`/metrics` read the database once per interval however often they are asked."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api import orders as orders_api
from ledger.bootstrap import Ledger
from tests.support.api import ApiContract, as_role


def count_queries(engine: sa.Engine) -> list[str]:
    """The statements run on the engine from now on."""
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[None]:
    """One entry per call of `owner.name` from now on (it still does what it did)."""
    calls: list[None] = []
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


class SharedCostsContract(ApiContract):
    def test_clients_waiting_for_a_position_hold_no_thread_of_the_shared_pool(
            self, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(orders_api, "READ_YOUR_WRITE_SECONDS", 3.0)
        assert client.portal is not None

        def two_threads() -> None:  # the serving loop's shared pool, made small
            anyio.to_thread.current_default_thread_limiter().total_tokens = 2

        client.portal.call(two_threads)
        with ThreadPoolExecutor(6) as clients:
            # Nothing follows the log here, so each of these waits its full 3 seconds.
            waits = [clients.submit(client.get, "/api/orders/W-1?min_position=999999", headers=as_role("merchant"))
                     for _ in range(6)]
            time.sleep(0.5)
            plain = client.get("/api/orders/W-1", headers=as_role("merchant"))
            waiting = [not wait.done() for wait in waits]
            answers = [wait.result().status_code for wait in waits]
        assert plain.status_code == 404, plain.text
        assert all(waiting), "a plain read had to wait for a waiting client's thread"
        assert answers == [503] * 6

    def test_a_flood_of_readiness_checks_asks_the_database_once(self, client: TestClient, ledger: Ledger,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
        pings = count_calls(monkeypatch, ledger.store, "ping")
        answers = {client.get("/readyz").status_code for _ in range(50)}
        assert (answers, len(pings)) == ({200}, 1)

    def test_a_flood_of_metrics_scrapes_reads_the_shared_state_once(self, client: TestClient, ledger: Ledger,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        assert ledger.engine is not None
        first = client.get("/metrics")
        assert first.status_code == 200 and "ledger_projection_lag" in first.text
        queries, pings = count_queries(ledger.engine), count_calls(monkeypatch, ledger.store, "ping")
        scrapes = [client.get("/metrics") for _ in range(30)]
        assert all(scrape.status_code == 200 and "ledger_projection_lag" in scrape.text for scrape in scrapes)
        assert (queries, pings) == ([], [])


class TestSharedCostsOnSQLite(SharedCostsContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestSharedCostsOnPostgres(SharedCostsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
