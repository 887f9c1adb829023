"""A client that has just written reads its own write; operators see each projection's lag."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from api import orders as orders_api
from api.app import create_app
from ledger.bootstrap import Ledger

TOKENS = {"LEDGER_API_TOKENS": "merchant:m-token-0123456789,operator:o-token-0123456789"}
MERCHANT = {"authorization": "Bearer m-token-0123456789"}
OPERATOR = {"authorization": "Bearer o-token-0123456789"}


@pytest.fixture
def client(make_ledger: Callable[..., Ledger], sqlite_url: str) -> Iterator[TestClient]:
    ledger = make_ledger(sqlite_url, **TOKENS)
    app = create_app(ledger, close_on_shutdown=False, background=ledger.follower(poll_seconds=0.1))
    with TestClient(app) as client:
        yield client


def test_registration_answers_its_log_position_and_a_read_at_that_position_sees_it(client: TestClient) -> None:
    created = client.post("/api/orders", json={"out_trade_no": "RYW-1", "total_amount": "12.30"}, headers=MERCHANT)
    position = created.json()["position"]
    shown = client.get(f"/api/orders/RYW-1?min_position={position}", headers=MERCHANT)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["registered"], shown.json()["registered_amount"]) == (True, "12.30")


def test_a_position_the_read_model_does_not_reach_in_time_answers_503(client: TestClient,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders_api, "READ_YOUR_WRITE_SECONDS", 0.2)
    client.post("/api/orders", json={"out_trade_no": "RYW-2", "total_amount": "1.00"}, headers=MERCHANT)
    late = client.get("/api/orders/RYW-2?min_position=999999", headers=MERCHANT)
    assert (late.status_code, late.headers["retry-after"]) == (503, "1")
    assert client.get("/api/orders/RYW-2?min_position=abc", headers=MERCHANT).status_code == 400


def test_operator_sees_each_projections_position_head_and_lag(client: TestClient) -> None:
    position = client.post("/api/orders", json={"out_trade_no": "RYW-3", "total_amount": "1.00"},
                           headers=MERCHANT).json()["position"]
    client.get(f"/api/orders/RYW-3?min_position={position}", headers=MERCHANT)
    body = client.get("/api/projections", headers=OPERATOR).json()
    assert body["head"] >= position and body["follower"]["running"] is True
    names = {p["name"]: p for p in body["projections"]}
    assert set(names) == {"order_status", "callback_log", "daily_totals", "journal_entries", "deliveries",
                          "alerts", "messages", "bills", "refunds", "reconciliation", "dispatcher"}
    assert names["order_status"]["lag"] == body["head"] - names["order_status"]["position"]
    assert client.get("/api/projections", headers=MERCHANT).status_code == 403
