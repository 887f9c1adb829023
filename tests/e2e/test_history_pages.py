"""End to end over HTTP, on SQLite and on PostgreSQL: an order's history comes a page at a time, read by the
database, however long its stream; `?as_of_version` works on any page."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.api import ApiContract, history, is_json_error, notify
from tests.support.streams import long_stream


def walk_history(client: TestClient, out_trade_no: str, **params: str) -> list[int]:
    """Every event's version, page by page by next_after_version."""
    versions: list[int] = []
    after = "0"
    while True:
        body = history(client, out_trade_no, after_version=after, **params).json()
        versions += [event["version"] for event in body["events"]]
        if body["next_after_version"] is None:
            return versions
        after = str(body["next_after_version"])


class HistoryPagesContract(ApiContract):
    def test_history_answers_a_page_of_100_events_by_default_and_where_the_next_starts(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        long_stream(ledger, alipay, "LONG-1", events=205)
        body = history(client, "LONG-1").json()
        assert [event["version"] for event in body["events"]] == list(range(1, 101))
        assert body["next_after_version"] == 100
        last = history(client, "LONG-1", after_version="200").json()
        assert [event["version"] for event in last["events"]] == [201, 202, 203, 204, 205]
        assert last["next_after_version"] is None

    def test_history_pages_walk_every_event_once_and_a_full_last_page_says_nothing_follows(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        long_stream(ledger, alipay, "LONG-2", events=21)
        assert walk_history(client, "LONG-2", limit="7") == list(range(1, 22))
        assert history(client, "LONG-2", after_version="14", limit="7").json()["next_after_version"] is None
        assert len(history(client, "LONG-2", limit="1000").json()["events"]) == 21

    @pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "1001"}, {"limit": "abc"},
                                        {"after_version": "-1"}, {"after_version": "x"}],
                             ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()))
    def test_history_with_a_bad_page_is_refused_naming_the_parameter(self, client: TestClient,
                                                                      alipay: SandboxAlipay,
                                                                      params: dict[str, str]) -> None:
        notify(client, alipay, "PAGE-1")
        response = history(client, "PAGE-1", **params)
        assert is_json_error(response, 400, "invalid_request"), response.text
        assert next(iter(params)) in response.json()["detail"]

    def test_history_after_its_last_event_is_an_empty_page_and_of_an_unknown_order_404(
            self, client: TestClient, alipay: SandboxAlipay) -> None:
        notify(client, alipay, "PAGE-2")
        after = history(client, "PAGE-2", after_version="3").json()
        assert (after["events"], after["next_after_version"]) == ([], None)
        assert is_json_error(history(client, "NO-SUCH", after_version="3"), 404, "not_found")
        assert is_json_error(history(client, "NO-SUCH"), 404, "not_found")

    def test_history_as_of_a_version_works_on_any_page(self, client: TestClient, ledger: Ledger,
                                                       alipay: SandboxAlipay) -> None:
        long_stream(ledger, alipay, "LONG-3", events=10)
        body = history(client, "LONG-3", after_version="5", limit="2", as_of_version="3").json()
        assert [event["version"] for event in body["events"]] == [6, 7]
        assert (body["as_of"]["version"], body["as_of"]["status"]) == (3, "PAID")


class TestHistoryPagesOnSQLite(HistoryPagesContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestHistoryPagesOnPostgres(HistoryPagesContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
