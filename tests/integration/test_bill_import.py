"""A trade bill imported as evidence, on SQLite and PostgreSQL: read and checked whole, its bytes kept by their
SHA-256, one BillImported; the same file again records nothing new; what is not a whole, consistent bill is refused
and leaves nothing; a day's bill fetched through the stand-in gateway over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.alipay.sandbox_bill import DAY, bill_zip, detail_csv
from ledger.bootstrap import Ledger
from ledger.domain.bill import Bill
from ledger.domain.errors import BillNotYet, BillRefused, GatewayError
from projections.tables import bills
from tests.support.alipay import APP_ID
from tests.support.bills import trades
from tests.support.gateway import StandIn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, make_ledger: Callable[..., Ledger], alipay_gateway: StandIn) -> Ledger:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    return make_ledger(url, **alipay_gateway.env())


def imported_events(ledger: Ledger) -> list[Any]:
    return [e for _, e in _all(ledger) if type(e).__qualname__ == "Bill.BillImported"]


def _all(ledger: Ledger) -> list[tuple[int, Any]]:
    batch = ledger.store.recorder.select_notifications(0, 10_000, inclusive_of_start=False)
    return [(n.id, ledger.store.mapper.to_domain_event(n)) for n in batch]


def listed(ledger: Ledger) -> list[dict[str, Any]]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    with ledger.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(bills))]


def test_a_bill_is_kept_as_evidence_with_its_hash_and_the_details_totals(ledger: Ledger) -> None:
    assert ledger.bills is not None
    data = bill_zip(trades())
    done = ledger.bills.import_bill(data, source="file 20880000.zip", who="finance bob via CLI")
    assert done.newly and done.sha256 == hashlib.sha256(data).hexdigest()
    [event] = imported_events(ledger)
    assert (event.sha256, event.size, event.source, event.who, event.bill_date) == (
        done.sha256, len(data), "file 20880000.zip", "finance bob via CLI", DAY.isoformat())
    assert (event.payments, event.refunds, event.total_amount) == (2, 1, Decimal("90.00"))
    assert ledger.bills.bytes_of(done.bill) == data  # the exact file back
    [row] = listed(ledger)
    assert (row["bill_id"], row["bill_date"], row["sha256"], row["payments"]) == (
        str(Bill.create_id(done.sha256)), date(2019, 9, 16), done.sha256, 2)


def test_the_same_file_imported_twice_records_nothing_new(ledger: Ledger) -> None:
    assert ledger.bills is not None
    data = bill_zip(trades())
    first = ledger.bills.import_bill(data, source="api", who="finance")
    again = ledger.bills.import_bill(data, source="file again.zip", who="someone else")
    assert first.newly and not again.newly and again.bill_id == first.bill_id
    assert len(imported_events(ledger)) == 1 and again.bill.source == "api"


def test_the_detail_csv_alone_is_a_bill_too(ledger: Ledger) -> None:
    assert ledger.bills is not None
    done = ledger.bills.import_bill(detail_csv(trades()), source="api", who="finance")
    assert done.newly and done.bill.payments == 2


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: bill_zip(trades(), summary_skew={"商家实收（元）": Decimal("0.01")}), "totals_differ"),
    (lambda: bill_zip(trades(), extra_column="神秘列"), "unknown_columns"),
    (lambda: detail_csv(trades(), encoding="utf-8"), "not_gbk"),
    (lambda: b"not a bill at all", "not_a_bill"),
])
def test_a_bill_that_is_not_whole_and_consistent_is_refused_and_leaves_nothing(
        ledger: Ledger, make: Callable[[], bytes], reason: str) -> None:
    assert ledger.bills is not None
    data = make()
    with pytest.raises(BillRefused) as refused:
        ledger.bills.import_bill(data, source="api", who="finance")
    assert refused.value.reason == reason
    assert imported_events(ledger) == [] and ledger.bills.files.read(hashlib.sha256(data).hexdigest()) is None


def test_a_bill_of_another_account_than_the_apps_seller_is_refused(
        make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_ALIPAY_SELLER_ID="2088999999999999")
    assert ledger.bills is not None
    with pytest.raises(BillRefused) as refused:
        ledger.bills.import_bill(bill_zip(trades()), source="api", who="finance")
    assert refused.value.reason == "wrong_account" and imported_events(ledger) == []


def test_a_days_bill_is_fetched_through_the_gateway_and_imported(ledger: Ledger, alipay_gateway: StandIn) -> None:
    assert ledger.bills is not None
    data = bill_zip(trades())
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), data)
    done = ledger.bills.fetch(DAY, who="the daily job")
    assert done.newly and done.bill.source == f"gateway {DAY}" and ledger.bills.bytes_of(done.bill) == data
    asked = alipay_gateway.sandbox.requests[-1]
    assert asked["method"] == "alipay.data.dataservice.bill.downloadurl.query"
    assert [t for m, t, _ in alipay_gateway.server.seen if t.startswith("/sandbox/bills/")] != []  # downloaded
    assert '"bill_type":"trade"' in asked["biz_content"] and f'"bill_date":"{DAY}"' in asked["biz_content"]


def test_a_fetched_bill_of_another_day_than_asked_is_refused_and_records_nothing(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    assert ledger.bills is not None
    asked = DAY + timedelta(days=1)
    alipay_gateway.sandbox.add_bill(APP_ID, asked.isoformat(), bill_zip(trades()))  # the file of DAY, mislabelled
    with pytest.raises(BillRefused) as refused:
        ledger.bills.fetch(asked, who="the daily job")
    assert refused.value.reason == "wrong_day" and str(DAY) in str(refused.value)
    assert imported_events(ledger) == []


def test_a_day_alipay_has_no_bill_for_yet_is_said_so_and_records_nothing(ledger: Ledger) -> None:
    assert ledger.bills is not None
    with pytest.raises(BillNotYet, match="no trade bill"):
        ledger.bills.fetch(DAY, who="the daily job")
    assert imported_events(ledger) == []


def test_a_download_url_in_an_answer_not_signed_by_alipay_is_never_followed(
        ledger: Ledger, alipay_gateway: StandIn) -> None:
    assert ledger.bills is not None
    alipay_gateway.sandbox.add_bill(APP_ID, DAY.isoformat(), bill_zip(trades()))
    alipay_gateway.sandbox.inject(times=1, wrong_key=True)
    with pytest.raises(GatewayError) as caught:
        ledger.bills.fetch(DAY, who="the daily job")
    assert caught.value.reason == "bad_signature" and imported_events(ledger) == []
    assert not any(target.startswith("/sandbox/bills/") for _, target, _ in alipay_gateway.server.seen)
