"""End to end over HTTP, on SQLite and on PostgreSQL: what a careless or hostile client sends is refused with a
400 or 413 naming why, never a 500, and nothing of it is recorded (docs/api-limits.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from api.bodies import BodyTooLarge, read_limited
from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.api import ApiContract, as_role, history, is_json_error, nothing_recorded, notify, register

LIMIT = 16 * 1024


def register_raw(client: TestClient, body: bytes | Iterator[bytes]) -> Any:
    return client.post("/api/orders", content=body, headers={**as_role("merchant"), "content-type": "application/json"})


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

    # -- registration: the body ------------------------------------------------------------------------

    def test_a_registration_nested_deeper_than_json_can_parse_is_refused_not_a_500(self,
                                                                                   client: TestClient) -> None:
        response = register_raw(client, b"[" * 10_000)
        assert is_json_error(response, 400, "invalid_request"), response.text
        assert "JSON" in response.json()["detail"]

    def test_a_registration_of_100000_nested_brackets_is_refused_as_too_large_not_a_500(
            self, client: TestClient) -> None:
        response = register_raw(client, b"[" * 100_000)
        assert is_json_error(response, 413, "too_large"), response.text
        assert "16384" in response.json()["detail"]

    def test_a_registration_over_16_kib_is_refused_as_too_large_and_nothing_is_recorded(
            self, client: TestClient, ledger: Ledger) -> None:
        body = json.dumps({"out_trade_no": "BIG-1", "total_amount": "88.00", "subject": "x" * LIMIT}).encode()
        response = register_raw(client, body)
        assert is_json_error(response, 413, "too_large"), response.text
        assert nothing_recorded(ledger, "BIG-1")

    def test_a_streamed_registration_over_16_kib_without_a_length_is_refused_as_too_large(
            self, client: TestClient, ledger: Ledger) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"out_trade_no": "BIG-2", "total_amount": "88.00", "subject": "'
            for _ in range(3):
                yield b"x" * 8192
            yield b'"}'

        response = register_raw(client, chunks())
        assert "content-length" not in response.request.headers
        assert is_json_error(response, 413, "too_large"), response.text
        assert nothing_recorded(ledger, "BIG-2")

    def test_a_registration_of_exactly_16_kib_is_read_and_registered(self, client: TestClient) -> None:
        body = json.dumps({"out_trade_no": "EDGE-1", "total_amount": "88.00"}).encode()
        response = register_raw(client, body + b" " * (LIMIT - len(body)))
        assert response.status_code == 201, response.text

    # -- registration: the rules of the domain ----------------------------------------------------------

    @pytest.mark.parametrize(("out_trade_no", "subject"), [("NUL-1", "a\x00book"), ("NUL\x002", "a book"),
                                                           ("LF-1", "two\nlines"), ("DEL\x7f1", "a book")],
                             ids=["nul-in-subject", "nul-in-out-trade-no", "newline-in-subject", "del-in-number"])
    def test_a_control_character_in_a_registration_is_refused_with_the_reason_and_nothing_recorded(
            self, client: TestClient, ledger: Ledger, out_trade_no: str, subject: str) -> None:
        response = register(client, out_trade_no, subject=subject)
        assert is_json_error(response, 400, "control_character"), response.text
        assert nothing_recorded(ledger, out_trade_no)

    @pytest.mark.parametrize("amount", ["9999999999999.99", "100000000.01", "0.00", "９９.００", "1e3"])
    def test_an_amount_outside_alipays_limits_is_refused_with_the_reason_and_nothing_recorded(
            self, client: TestClient, ledger: Ledger, amount: str) -> None:
        response = register(client, "AMT-1", total_amount=amount)
        assert is_json_error(response, 400, "bad_amount"), response.text
        assert nothing_recorded(ledger, "AMT-1")

    def test_the_largest_amount_alipay_pays_is_registered(self, client: TestClient) -> None:
        response = register(client, "AMT-2", total_amount="100000000.00")
        assert (response.status_code, response.json()["registered_amount"]) == (201, "100000000.00")

    def test_a_subject_over_256_characters_is_refused_with_the_reason_and_nothing_recorded(
            self, client: TestClient, ledger: Ledger) -> None:
        response = register(client, "SUBJ-1", subject="书" * 257)
        assert is_json_error(response, 400, "too_long"), response.text
        assert "subject" in response.json()["detail"]
        assert nothing_recorded(ledger, "SUBJ-1")

    # -- versions --------------------------------------------------------------------------------------

    @pytest.mark.parametrize("name", ["as_of_version", "after_version"])
    @pytest.mark.parametrize("version", ["2147483648", "99999999999999999999", "9" * 5000],
                             ids=["2**31", "20-digits", "5000-digits"])
    def test_a_version_beyond_any_stream_is_refused_not_a_500(self, client: TestClient, alipay: SandboxAlipay,
                                                               name: str, version: str) -> None:
        notify(client, alipay, "V-1")
        response = history(client, "V-1", **{name: version})
        assert is_json_error(response, 400, "invalid_request"), response.text
        assert name in response.json()["detail"] and "2147483647" in response.json()["detail"]


class TestApiLimitsOnSQLite(ApiLimitsContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestApiLimitsOnPostgres(ApiLimitsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


# -- reading a body: no database involved --------------------------------------------------------------


def test_a_body_is_read_no_further_than_the_chunk_that_passes_the_limit() -> None:
    pulled: list[int] = []

    async def receive() -> dict[str, Any]:  # an endless body, 8 KiB at a time
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 8192, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)

    async def read() -> None:
        with pytest.raises(BodyTooLarge):
            await read_limited(request, LIMIT)

    anyio.run(read)
    assert len(pulled) == 3
