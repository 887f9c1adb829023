"""End to end over HTTP, on SQLite and on PostgreSQL: an order whose out_trade_no holds "/" is read back by
every order route, escaped as %2F or not; a path ending in /history is always a history."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.api import ApiContract, as_role, history, is_json_error, notify, register


class OrderPathsContract(ApiContract):
    @pytest.mark.parametrize("path", ["A%2FB%2FC", "A/B/C"], ids=["escaped", "plain"])
    def test_a_registered_order_whose_number_holds_a_slash_is_read_back_with_its_history(
            self, client: TestClient, ledger: Ledger, path: str) -> None:
        assert register(client, "A/B/C").status_code == 201
        assert ledger.runner is not None
        ledger.runner.catch_up()
        shown = client.get(f"/api/orders/{path}", headers=as_role("finance"))
        assert shown.status_code == 200, shown.text
        assert shown.json()["out_trade_no"] == "A/B/C"
        told = history(client, path)
        assert told.status_code == 200, told.text
        assert told.json()["out_trade_no"] == "A/B/C"
        assert [event["type"] for event in told.json()["events"]] == ["Opened", "OrderRegistered"]

    def test_a_paid_order_whose_number_holds_a_slash_is_read_back(self, client: TestClient, ledger: Ledger,
                                                                 alipay: SandboxAlipay) -> None:
        notify(client, alipay, "SHOP/2026/7")
        assert ledger.runner is not None
        ledger.runner.catch_up()
        shown = client.get("/api/orders/SHOP%2F2026%2F7", headers=as_role("merchant"))
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "PAID"
        assert len(history(client, "SHOP%2F2026%2F7").json()["events"]) == 3

    def test_a_path_ending_in_history_is_a_history_so_an_order_named_so_is_read_at_history_history(
            self, client: TestClient) -> None:
        assert register(client, "X/history").status_code == 201
        own = history(client, "X/history")
        assert own.status_code == 200, own.text
        assert own.json()["out_trade_no"] == "X/history"
        of_x = client.get("/api/orders/X/history", headers=as_role("auditor"))
        assert is_json_error(of_x, 404, "not_found") and of_x.json()["detail"] == "no such order"

    def test_the_manual_queue_takes_an_order_number_holding_a_slash(self, client: TestClient) -> None:
        assert register(client, "Q/1").status_code == 201
        for action in ("retry", "resolve"):
            response = client.post(f"/api/manual-queue/Q%2F1/{action}", json={"note": "checked"},
                                   headers=as_role("operator"))
            # The order is found; it just has no abandoned delivery.
            assert is_json_error(response, 409, "nothing_to_do"), response.text


class TestOrderPathsOnSQLite(OrderPathsContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestOrderPathsOnPostgres(OrderPathsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
