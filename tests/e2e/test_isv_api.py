"""A service provider's (ISV) merchants over HTTP: registered, read and listed apart by `auth_app_id`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay

TOKENS = "merchant:merchant-token-0123456789,finance:finance-token-0123456789,auditor:auditor-token-0123456789"
MERCHANT = {"authorization": "Bearer merchant-token-0123456789"}
FINANCE = {"authorization": "Bearer finance-token-0123456789"}
AUDITOR = {"authorization": "Bearer auditor-token-0123456789"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
A, B = "2021000000000101", "2021000000000202"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, make_ledger: Callable[..., Ledger]) -> Ledger:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return make_ledger(url, LEDGER_API_TOKENS=TOKENS)


def test_two_merchants_orders_of_one_number_are_registered_paid_and_read_apart(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    order = f"V{uuid.uuid4().hex[:10]}"
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        for merchant, amount in ((A, "88.00"), (B, "66.00")):
            registered = client.post("/api/orders", headers=MERCHANT, json={
                "out_trade_no": order, "total_amount": amount, "auth_app_id": merchant})
            assert registered.status_code == 201 and registered.json()["auth_app_id"] == merchant
            paid = client.post("/api/alipay/notify", headers=FORM, content=alipay.body(
                order, auth_app_id=merchant, total_amount=amount, receipt_amount=amount, buyer_pay_amount=amount))
            assert paid.text == "success"
        assert ledger.runner is not None
        ledger.runner.catch_up()
        for merchant, amount in ((A, "88.00"), (B, "66.00")):
            row = client.get(f"/api/orders/{order}", params={"auth_app_id": merchant}, headers=FINANCE).json()
            assert (row["status"], row["paid_amount"], row["amount_mismatch"]) == ("PAID", amount, False)
            history = client.get(f"/api/orders/{order}/history", params={"auth_app_id": merchant},
                                 headers=AUDITOR).json()
            assert {e["type"] for e in history["events"]} >= {"Opened", "OrderRegistered", "PaymentConfirmed"}
        assert client.get(f"/api/orders/{order}", headers=FINANCE).status_code == 404  # no order of the app's own
        listed = client.get("/api/orders", params={"auth_app_id": A}, headers=FINANCE).json()["orders"]
        assert [(r["out_trade_no"], r["auth_app_id"]) for r in listed] == [(order, A)]

