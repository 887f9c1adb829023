"""End to end over HTTP, on SQLite and on PostgreSQL: what a careless or hostile client sends is refused with a
400 or 413 naming why, never a 500, and nothing of it is recorded (docs/api-limits.md)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.api import ApiContract, as_role, is_json_error


class ApiLimitsContract(ApiContract):
    # -- finance's listing: payment times --------------------------------------------------------------

    @pytest.mark.parametrize("params", [
        {"paid_from": "0001-01-01"}, {"paid_to": "0001-01-01"}, {"paid_from": "9999-12-31T23:59:59-23:59"},
        {"paid_to": "0001-01-01T00:00:00+23:59"}, {"paid_from": "2003-12-31T23:59:59+08:00"}, {"paid_to": "2100-01-01"},
    ], ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()))
    def test_a_paid_time_outside_the_years_alipay_pays_is_refused_not_a_500(self, client: TestClient,
                                                                             params: dict[str, str]) -> None:
        response = client.get("/api/orders", params=params, headers=as_role("finance"))
        assert is_json_error(response, 400, "invalid_request"), response.text
        (name,) = params
        assert name in response.json()["detail"] and "2004" in response.json()["detail"]

    def test_a_paid_range_at_the_edges_of_those_years_with_the_widest_offsets_is_read(self,
                                                                                       client: TestClient) -> None:
        params = {"paid_from": "2004-01-01T00:00:00+23:59", "paid_to": "2099-12-31T23:59:59-23:59"}
        response = client.get("/api/orders", params=params, headers=as_role("finance"))
        assert (response.status_code, response.json()["orders"]) == (200, [])


class TestApiLimitsOnSQLite(ApiLimitsContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestApiLimitsOnPostgres(ApiLimitsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
