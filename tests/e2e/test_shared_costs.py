"""End to end over HTTP, on SQLite and on PostgreSQL: what clients that wait cost everyone else: a
read-your-write wait holds no thread of the shared pool."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest
from starlette.testclient import TestClient

from api import orders as orders_api
from ledger.bootstrap import Ledger
from tests.support.api import ApiContract, as_role


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


class TestSharedCostsOnSQLite(SharedCostsContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestSharedCostsOnPostgres(SharedCostsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
