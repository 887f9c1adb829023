"""End to end over HTTP: finance lists orders (filters, keyset pages, CSV) and reads the daily report,
on SQLite and on PostgreSQL, over a generated history plus payments placed exactly around CST midnight."""

from __future__ import annotations

import base64
import csv
import io
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.10 asks for httpx2 and warns when it falls back to httpx, the client the project installs.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from api.app import create_app
from api.csvstream import csv_chunks
from ledger.bootstrap import Ledger
from ledger.service.application import RegisterOrder
from projections.common import CST
from projections.queries import iter_orders, list_orders
from projections.tables import journal_entries
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.histories import feed_history
from tests.support.ledgers import record

TOKEN_OF = {role: f"{role[0]}-token-0123456789" for role in ("merchant", "auditor", "finance", "operator")}
TOKENS = ",".join(f"{role}:{token}" for role, token in TOKEN_OF.items())
SECOND_APP = "2021000000000002"
SEED, ORDERS = 11, 24
ORDERS_URL, DAILY_URL = "/api/orders", "/api/reports/daily"
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
CHINESE = "中文商品：书"
REPORT_URLS = [ORDERS_URL, f"{ORDERS_URL}?format=csv", f"{DAILY_URL}?from=2026-11-01&to=2026-11-30"]


def as_role(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN_OF[role]}"}


def get(client: TestClient, url: str, role: str = "finance", **params: str):  # type: ignore[no-untyped-def]
    return client.get(url, params=params, headers=as_role(role))


def ok(client: TestClient, url: str, **params: str) -> Any:
    response = get(client, url, **params)
    assert response.status_code == 200, response.text
    return response.json()


def everything(client: TestClient, **params: str) -> list[dict[str, Any]]:
    body = ok(client, ORDERS_URL, limit="1000", **params)
    assert body["next_cursor"] is None
    return body["orders"]  # type: ignore[no-any-return]


def numbers(client: TestClient, **params: str) -> list[str]:
    return [row["out_trade_no"] for row in everything(client, **params)]


def walk(client: TestClient, **params: str) -> list[dict[str, Any]]:
    """Every page by next_cursor: all but the last are full, and the last says there is nothing after it."""
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = ok(client, ORDERS_URL, **params, **({"cursor": cursor} if cursor else {}))
        walked += body["orders"]
        cursor = body["next_cursor"]
        if cursor is None:
            assert len(body["orders"]) < int(params["limit"])
            return walked
        assert len(body["orders"]) == int(params["limit"])


def csv_rows(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def is_json_error(response) -> bool:  # type: ignore[no-untyped-def]
    return (response.status_code == 400 and response.headers["content-type"].startswith("application/json")
            and response.json()["error"] == "invalid_request")


def cst_day(iso: str) -> date:
    return datetime.fromisoformat(iso).astimezone(CST).date()


def money(value: Decimal) -> str:
    return f"{value:.2f}"


def hand_made(ledger: Ledger, alipay: SandboxAlipay) -> None:
    """Payments placed exactly around China-Standard-Time midnight, a Chinese subject, a formula subject."""
    record(ledger, alipay.body("X-MIDNIGHT", total_amount="10.00", gmt_payment="2026-11-02 00:10:00"))
    record(ledger, alipay.body("X-EVE", total_amount="20.00", gmt_payment="2026-11-01 23:59:59"))
    record(ledger, alipay.body("Y-SECOND", app_id=SECOND_APP, total_amount="30.00", gmt_payment="2026-11-02 00:10:00"))
    for out_trade_no, subject in (("X-CHINESE", CHINESE), ("X-FORMULA", "=1+2")):
        ledger.service.register_order(RegisterOrder(APP_ID, out_trade_no, Decimal("66.00"), subject))
        record(ledger, alipay.body(out_trade_no, total_amount="66.00", gmt_payment="2026-11-03 12:00:00"))
    ledger.service.register_order(RegisterOrder(APP_ID, "X-PENDING", Decimal("5.00"), "never paid"))


def two_app_ledger(make_ledger: Callable[..., Ledger], database_url: str, alipay: SandboxAlipay) -> Ledger:
    return make_ledger(database_url, LEDGER_API_TOKENS=TOKENS, LEDGER_ALIPAY_APPS="SECOND",
                       LEDGER_ALIPAY_SECOND_APP_ID=SECOND_APP, LEDGER_ALIPAY_SECOND_PUBLIC_KEY=alipay.public_key_b64)


HAND_MADE = {"X-MIDNIGHT", "X-EVE", "Y-SECOND", "X-CHINESE", "X-FORMULA", "X-PENDING"}


class ReportsContract:
    """Run against every backend by the subclasses below."""

    @pytest.fixture
    def database_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], database_url: str, alipay: SandboxAlipay) -> Ledger:
        ledger = two_app_ledger(make_ledger, database_url, alipay)
        feed_history(ledger, alipay, orders=ORDERS, seed=SEED)
        hand_made(ledger, alipay)
        assert ledger.runner is not None
        ledger.runner.catch_up()
        return ledger

    @pytest.fixture
    def client(self, ledger: Ledger) -> Iterator[TestClient]:
        with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
            yield client

    @pytest.fixture
    def bare_client(self, make_ledger: Callable[..., Ledger], database_url: str,
                    alipay: SandboxAlipay) -> Iterator[TestClient]:
        """Over an empty ledger: for what is decided before any row is read."""
        with TestClient(create_app(two_app_ledger(make_ledger, database_url, alipay), close_on_shutdown=False)) as c:
            yield c

    # -- auth ------------------------------------------------------------------------------------------

    @pytest.mark.parametrize("url", REPORT_URLS)
    def test_reports_without_a_token_answer_401_with_a_bearer_challenge(self, bare_client: TestClient,
                                                                        url: str) -> None:
        response = bare_client.get(url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("role", ["merchant", "auditor"])
    @pytest.mark.parametrize("url", REPORT_URLS)
    def test_merchant_and_auditor_are_forbidden_the_reports(self, bare_client: TestClient, url: str, role: str) -> None:
        response = bare_client.get(url, headers=as_role(role))
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"

    @pytest.mark.parametrize("role", ["finance", "operator"])
    def test_finance_and_operator_read_the_reports(self, bare_client: TestClient, role: str) -> None:
        assert get(bare_client, ORDERS_URL, role).status_code == 200
        assert get(bare_client, DAILY_URL, role, **NOVEMBER).status_code == 200

    # -- listing and filters -----------------------------------------------------------------------------

    def test_listing_returns_every_order_once_by_ascending_id(self, client: TestClient) -> None:
        rows = everything(client)
        assert sorted(row["out_trade_no"] for row in rows) == sorted(
            {f"H{SEED}-{n}" for n in range(ORDERS)} | HAND_MADE)
        assert [row["id"] for row in rows] == sorted({row["id"] for row in rows})

    def test_default_page_is_one_hundred_orders_with_money_as_strings(self, client: TestClient) -> None:
        body = ok(client, ORDERS_URL)
        assert len(body["orders"]) == ORDERS + len(HAND_MADE) and body["next_cursor"] is None
        eve = next(row for row in body["orders"] if row["out_trade_no"] == "X-EVE")
        assert (eve["status"], eve["paid_amount"], eve["refunded_amount"], eve["app_id"]) == (
            "PAID", "20.00", "0.00", APP_ID)

    def test_status_filter_keeps_only_the_listed_statuses(self, client: TestClient) -> None:
        rows = everything(client)
        assert {"PENDING", "PAID", "CLOSED"} <= {row["status"] for row in rows}
        for wanted in (["PAID"], ["PAID", "CLOSED"], ["PENDING", "FINISHED"]):
            expected = [row["out_trade_no"] for row in rows if row["status"] in wanted]
            assert numbers(client, status=",".join(wanted)) == expected

    def test_app_id_filter_keeps_only_that_apps_orders(self, client: TestClient) -> None:
        assert numbers(client, app_id=SECOND_APP) == ["Y-SECOND"]
        assert numbers(client, app_id="2021999999999999") == []

    def test_payment_times_come_back_in_utc_whichever_database(self, client: TestClient) -> None:
        rows = {row["out_trade_no"]: row for row in everything(client)}
        assert rows["X-MIDNIGHT"]["gmt_payment"] == "2026-11-01T16:10:00+00:00"
        assert rows["X-EVE"]["gmt_payment"] == "2026-11-01T15:59:59+00:00"
        assert rows["X-PENDING"]["gmt_payment"] is None
        assert all(row["updated_at"].endswith("+00:00") for row in rows.values())

    def test_a_payment_at_ten_past_midnight_cst_belongs_to_that_day(self, client: TestClient) -> None:
        on_the_2nd = numbers(client, paid_from="2026-11-02")
        before_the_2nd = numbers(client, paid_to="2026-11-02")
        assert "X-MIDNIGHT" in on_the_2nd and "X-MIDNIGHT" not in before_the_2nd
        assert "X-EVE" in before_the_2nd and "X-EVE" not in on_the_2nd
        assert numbers(client, paid_from="2026-11-01", paid_to="2026-11-02", app_id=APP_ID).count("X-EVE") == 1

    def test_paid_from_is_inclusive_and_paid_to_exclusive_to_the_second(self, client: TestClient) -> None:
        for instant in ("2026-11-02T00:10:00", "2026-11-02 00:10:00", "2026-11-01T16:10:00Z",
                        "2026-11-01T16:10:00+00:00", "2026-11-02T00:10:00+08:00"):
            assert "X-MIDNIGHT" in numbers(client, paid_from=instant), instant
            assert "X-MIDNIGHT" not in numbers(client, paid_to=instant), instant

    def test_paid_range_matches_the_payment_times_of_the_full_listing(self, client: TestClient) -> None:
        rows = everything(client)
        start, end = datetime(2026, 11, 3, tzinfo=CST), datetime(2026, 11, 10, 8, tzinfo=CST)
        expected = [row["out_trade_no"] for row in rows
                    if row["gmt_payment"] and start <= datetime.fromisoformat(row["gmt_payment"]) < end]
        assert expected and numbers(client, paid_from="2026-11-03", paid_to="2026-11-10T08:00:00") == expected

    # -- keyset pagination ------------------------------------------------------------------------------

    def test_pages_of_seven_walk_every_row_exactly_once(self, client: TestClient) -> None:
        for filters in ({}, {"status": "PAID,CLOSED"}, {"paid_from": "2026-11-05"}):
            walked = walk(client, limit="7", **filters)
            assert len({row["id"] for row in walked}) == len(walked)
            assert walked == everything(client, **filters), filters

    def test_iter_orders_reads_page_by_page_the_same_rows_as_one_big_page(self, ledger: Ledger) -> None:
        assert ledger.engine is not None
        filters: dict[str, Any] = {"statuses": ["PAID", "FINISHED"], "paid_from": datetime(2026, 11, 2, tzinfo=CST)}
        one_page = list_orders(ledger.engine, **filters, limit=1000)
        assert len(one_page) > 5
        assert list(iter_orders(ledger.engine, **filters, page=5)) == one_page
        assert list(iter_orders(ledger.engine, **filters, after_id=one_page[2]["id"], page=2)) == one_page[3:]

    # -- CSV --------------------------------------------------------------------------------------------

    def test_csv_download_has_every_row_of_the_listing_whatever_the_limit(self, client: TestClient) -> None:
        response = get(client, ORDERS_URL, format="csv", limit="3")
        assert response.headers["content-disposition"] == 'attachment; filename="orders.csv"'
        rows, listed = csv_rows(response), everything(client)
        assert list(rows[0]) == list(listed[0])
        keys = ("id", "out_trade_no", "status", "app_id")
        assert [tuple(row[k] for k in keys) for row in rows] == [tuple(str(row[k]) for k in keys) for row in listed]
        for name in ("paid_amount", "receipt_amount", "refunded_amount", "registered_amount"):
            assert [row[name] for row in rows] == [row[name] or "" for row in listed]
        assert [row["registered"] for row in rows] == [str(row["registered"]).lower() for row in listed]

    def test_csv_shows_cst_times_chinese_text_and_empty_cells_for_nothing(self, client: TestClient) -> None:
        rows = {row["out_trade_no"]: row for row in csv_rows(get(client, ORDERS_URL, format="csv"))}
        assert rows["X-MIDNIGHT"]["gmt_payment"] == "2026-11-02 00:10:00"
        assert rows["X-CHINESE"]["subject"] == CHINESE
        assert (rows["X-PENDING"]["gmt_payment"], rows["X-PENDING"]["paid_amount"]) == ("", "")
        assert (rows["X-PENDING"]["registered"], rows["X-PENDING"]["amount_mismatch"]) == ("true", "false")

    def test_csv_defuses_a_subject_that_a_spreadsheet_would_run_as_a_formula(self, client: TestClient) -> None:
        rows = {row["out_trade_no"]: row for row in csv_rows(get(client, ORDERS_URL, format="csv"))}
        assert rows["X-FORMULA"]["subject"] == "'=1+2"
        listed = {row["out_trade_no"]: row for row in everything(client)}
        assert listed["X-FORMULA"]["subject"] == "=1+2"

    def test_csv_with_filters_and_a_cursor_continues_where_the_json_page_stopped(self, client: TestClient) -> None:
        filters = {"status": "PAID,FINISHED", "paid_from": "2026-11-02"}
        first = ok(client, ORDERS_URL, limit="7", **filters)
        rest = csv_rows(get(client, ORDERS_URL, format="csv", cursor=first["next_cursor"], **filters))
        expected = everything(client, **filters)[7:]
        assert [row["out_trade_no"] for row in rest] == [row["out_trade_no"] for row in expected]
        assert expected

    def test_csv_of_nothing_is_just_the_header(self, client: TestClient) -> None:
        response = get(client, ORDERS_URL, format="csv", app_id="2021999999999999")
        assert csv_rows(response) == []
        assert response.content.decode("utf-8-sig").startswith("id,app_id,auth_app_id,out_trade_no,")

    # -- daily report -----------------------------------------------------------------------------------

    def test_daily_report_equals_the_payments_and_refunds_recorded(self, client: TestClient, ledger: Ledger) -> None:
        expected: dict[tuple[str, str], dict[str, Any]] = defaultdict(
            lambda: {"payments_count": 0, "payments_amount": Decimal(0), "refunds_count": 0,
                     "refunds_amount": Decimal(0)})
        orders = everything(client)
        for row in orders:
            if row["paid_amount"] is not None:
                day = expected[(cst_day(row["gmt_payment"]).isoformat(), row["app_id"])]
                day["payments_count"] += 1
                day["payments_amount"] += Decimal(row["paid_amount"])
        assert ledger.engine is not None
        with ledger.engine.connect() as conn:
            refunds = conn.execute(sa.select(journal_entries).where(journal_entries.c.account == "sales_refunds"))
            for entry in refunds:
                day = expected[(entry.day.isoformat(), entry.app_id)]
                day["refunds_count"] += 1
                day["refunds_amount"] += entry.amount
        body = ok(client, DAILY_URL, **NOVEMBER)
        assert (body["from"], body["to"]) == ("2026-11-01", "2026-11-30")
        assert [(d["day"], d["app_id"]) for d in body["days"]] == sorted(expected)
        for d in body["days"]:
            want = expected[(d["day"], d["app_id"])]
            net = want["payments_amount"] - want["refunds_amount"]
            # No order here is an ISV merchant's: auth_app_id is empty on every day.
            assert d == {"day": d["day"], "app_id": d["app_id"], "auth_app_id": "",
                         "payments_count": want["payments_count"], "payments_amount": money(want["payments_amount"]),
                         "refunds_count": want["refunds_count"], "refunds_amount": money(want["refunds_amount"]),
                         "net_amount": money(net)}
        paid = sum(Decimal(row["paid_amount"]) for row in orders if row["paid_amount"])
        refunded = sum(Decimal(row["refunded_amount"]) for row in orders)
        assert (body["totals"]["payments_amount"], body["totals"]["refunds_amount"]) == (money(paid), money(refunded))

    def test_daily_totals_are_the_sums_of_the_days(self, client: TestClient) -> None:
        body = ok(client, DAILY_URL, **NOVEMBER)
        for name, value in body["totals"].items():
            total = sum(Decimal(str(day[name])) for day in body["days"])
            assert value == (money(total) if name.endswith("amount") else int(total))

    def test_daily_report_puts_ten_past_midnight_cst_on_that_day_for_its_app(self, client: TestClient) -> None:
        body = ok(client, DAILY_URL, app_id=SECOND_APP, **{"from": "2026-11-01", "to": "2026-11-02"})
        assert [(d["day"], d["payments_count"], d["payments_amount"]) for d in body["days"]] == [
            ("2026-11-02", 1, "30.00")]
        both = ok(client, DAILY_URL, **{"from": "2026-11-02", "to": "2026-11-02"})["days"]
        assert [d["app_id"] for d in both] == [APP_ID, SECOND_APP]

    def test_daily_report_of_days_without_payments_is_empty_with_zero_totals(self, client: TestClient) -> None:
        body = ok(client, DAILY_URL, **{"from": "2025-01-01", "to": "2025-01-31"})
        assert body["days"] == []
        assert body["totals"] == {"payments_count": 0, "payments_amount": "0.00", "refunds_count": 0,
                                  "refunds_amount": "0.00", "net_amount": "0.00"}

    def test_daily_report_csv_parses_back_to_the_days_and_a_total_row(self, client: TestClient) -> None:
        body = ok(client, DAILY_URL, **NOVEMBER)
        response = get(client, DAILY_URL, format="csv", **NOVEMBER)
        assert response.headers["content-disposition"] == 'attachment; filename="daily-2026-11-01-2026-11-30.csv"'
        rows = csv_rows(response)
        as_text = [{k: str(v) for k, v in day.items()} for day in body["days"]]
        total = {"day": "TOTAL", "app_id": "", "auth_app_id": "", **{k: str(v) for k, v in body["totals"].items()}}
        assert rows == [*as_text, total]

    def test_daily_report_of_exactly_366_days_is_allowed(self, client: TestClient) -> None:
        body = ok(client, DAILY_URL, **{"from": "2026-01-01", "to": "2027-01-01"})
        assert body["totals"] == ok(client, DAILY_URL, **NOVEMBER)["totals"]


class TestReportsOnSQLite(ReportsContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestReportsOnPostgres(ReportsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


@pytest.fixture
def sqlite_client(make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay) -> Iterator[TestClient]:
    with TestClient(create_app(two_app_ledger(make_ledger, sqlite_url, alipay), close_on_shutdown=False)) as client:
        yield client


# -- bad parameters: refused before any row is read, so checked once, over SQLite ----------------------


@pytest.mark.parametrize("params", [
    {"cursor": "not a cursor!"}, {"cursor": base64.urlsafe_b64encode(b"order:abc").decode()},
    {"cursor": base64.urlsafe_b64encode(b"order:99999999999999999999").decode()}, {"cursor": "5"},
    {"limit": "0"}, {"limit": "1001"}, {"limit": "abc"}, {"limit": "²"}, {"limit": "-1"},
    {"status": "paid"}, {"status": "PAID,"}, {"status": "SHIPPED"}, {"status": ""},
    {"paid_from": "2026-13-01"}, {"paid_from": "yesterday"}, {"paid_to": "2026-11-01T10:00:00 08:00"},
    {"paid_from": "2026-11-02", "paid_to": "2026-11-01"}, {"paid_from": "2026-11-02", "paid_to": "2026-11-02"},
    {"format": "xml"}, {"app_id": ""}, {"from": "2026-11-01"},
    {"limit": "7", "format": "csv", "cursor": "%%%"},
], ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()))
def test_malformed_listing_parameter_is_refused_as_json_naming_it(sqlite_client: TestClient,
                                                                  params: dict[str, str]) -> None:
    response = get(sqlite_client, ORDERS_URL, **params)
    assert is_json_error(response), response.text
    named = [name for name in params if name in response.json()["detail"]]
    assert named, response.json()


def test_a_parameter_given_twice_is_refused(sqlite_client: TestClient) -> None:
    response = sqlite_client.get(f"{ORDERS_URL}?status=PAID&status=CLOSED", headers=as_role("finance"))
    assert is_json_error(response) and "status" in response.json()["detail"]


@pytest.mark.parametrize("params", [
    {"to": "2026-11-30"}, {"from": "2026-11-01"}, {"from": "2026-11-31", "to": "2026-12-01"},
    {"from": "2026/11/01", "to": "2026-11-30"}, {"from": "20261101", "to": "2026-11-30"},
    {"from": "2026-11-30", "to": "2026-11-01"}, {"from": "2026-01-01", "to": "2027-01-02"},
    {"from": "2026-11-01", "to": "2026-11-30", "format": "pdf"},
    {"from": "2026-11-01", "to": "2026-11-30", "paid_from": "2026-11-01"},
], ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()))
def test_bad_daily_range_is_refused_as_json(sqlite_client: TestClient, params: dict[str, str]) -> None:
    response = get(sqlite_client, DAILY_URL, **params)
    assert is_json_error(response), response.text


def test_csv_chunks_make_the_same_text_however_many_rows_go_in_a_chunk() -> None:
    rows = [{"n": n, "amount": Decimal(n) / 4, "ok": n % 2 == 0, "note": None if n % 3 else "书"} for n in range(7)]
    chunks = list(csv_chunks(["n", "amount", "ok", "note"], rows, rows_per_chunk=2))
    assert len(chunks) == 4 and chunks[0].startswith("\ufeffn,amount,ok,note\r\n0,0.00,true,书\r\n")
    assert "".join(chunks) == "".join(csv_chunks(["n", "amount", "ok", "note"], rows))


def test_reports_of_a_ledger_without_a_read_model_answer_501(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger("memory://", migrate_first=False, LEDGER_API_TOKENS=TOKENS)
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        for url, params in ((ORDERS_URL, {}), (DAILY_URL, NOVEMBER)):
            response = get(client, url, **params)
            assert (response.status_code, response.json()["error"]) == (501, "not_implemented")
