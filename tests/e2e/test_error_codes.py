"""Every error answer names what went wrong in a code a client can branch on, not a bare HTTP status."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from ledger.bootstrap import Ledger
from tests.support.api import TOKENS, as_role, is_json_error, register


@pytest.fixture
def client(make_ledger: Callable[..., Ledger], sqlite_url: str) -> Iterator[TestClient]:
    # No follower: the read model stays where it is, as it is for a moment after any write.
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        yield client


def test_no_token_answers_unauthorized_and_the_wrong_role_forbidden(client: TestClient) -> None:
    assert is_json_error(client.get("/api/manual-queue"), 401, "unauthorized")
    assert is_json_error(client.get("/api/manual-queue", headers=as_role("merchant")), 403, "forbidden")


def test_an_unknown_path_answers_not_found_and_a_wrong_method_method_not_allowed(client: TestClient) -> None:
    assert is_json_error(client.get("/api/nothing-here"), 404, "not_found")
    assert is_json_error(client.delete("/api/orders/ANY", headers=as_role("merchant")), 405, "method_not_allowed")


def test_an_order_that_does_not_exist_answers_not_found(client: TestClient) -> None:
    assert is_json_error(client.get("/api/orders/NO-SUCH", headers=as_role("merchant")), 404, "not_found")


def test_reading_an_order_the_read_model_has_not_applied_yet_says_so_and_how_to_wait(client: TestClient) -> None:
    registered = register(client, "FRESH-1")
    assert registered.status_code == 201 and registered.json()["position"] > 0
    shown = client.get("/api/orders/FRESH-1", headers=as_role("merchant"))
    assert shown.status_code == 404
    assert shown.json()["error"] == "not_yet_projected"
    assert "?min_position=" in shown.json()["hint"]


def test_a_read_model_that_does_not_reach_the_position_in_time_answers_read_model_behind(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from api import orders as orders_api

    monkeypatch.setattr(orders_api, "READ_YOUR_WRITE_SECONDS", 0.1)
    late = client.get("/api/orders/ANY?min_position=999999", headers=as_role("merchant"))
    assert is_json_error(late, 503, "read_model_behind") and late.headers["retry-after"] == "1"
