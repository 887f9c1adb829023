"""A service provider (ISV) notifies for many merchants under one app_id: each merchant's orders are its own,
even when two merchants use the same out_trade_no. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ledger.bootstrap import Ledger
from ledger.domain.order import Order
from ledger.service.application import RegisterOrder
from projections.queries import order_row
from projections.tables import daily_totals, journal_entries
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.ledgers import record

MERCHANT_A, MERCHANT_B = "2021000000000101", "2021000000000202"


class IsvContract:
    @pytest.fixture
    def ledger(self) -> Ledger:
        raise NotImplementedError

    @pytest.mark.parametrize("amounts", [("88.00", "88.00"), ("88.00", "66.00")])
    def test_two_merchants_same_out_trade_no_are_two_orders_everywhere(
            self, ledger: Ledger, alipay: SandboxAlipay, amounts: tuple[str, str]) -> None:
        order = f"I{uuid.uuid4().hex[:10]}"
        for merchant, seller, amount in ((MERCHANT_A, "2088000000000101", amounts[0]),
                                         (MERCHANT_B, "2088000000000202", amounts[1])):
            record(ledger, alipay.body(order, auth_app_id=merchant, seller_id=seller, total_amount=amount,
                                       receipt_amount=amount, buyer_pay_amount=amount))
        a, b = (ledger.service.get_order(APP_ID, order, merchant=m) for m in (MERCHANT_A, MERCHANT_B))
        assert a is not None and b is not None and a.id != b.id
        assert (a.status, b.status) == ("PAID", "PAID") and not a.mismatched_amounts and not b.mismatched_amounts
        assert ledger.service.get_order(APP_ID, order) is None  # the app's own order of that number: none
        assert ledger.runner is not None and ledger.engine is not None
        ledger.runner.catch_up()
        rows = [order_row(ledger.engine, APP_ID, order, m) for m in (MERCHANT_A, MERCHANT_B)]
        assert [r["paid_amount"] for r in rows if r] == [Decimal(amounts[0]), Decimal(amounts[1])]
        with ledger.engine.connect() as conn:
            totals = conn.execute(sa.select(daily_totals.c.auth_app_id, daily_totals.c.payments_count)
                                  .order_by(daily_totals.c.auth_app_id)).all()
            journal = conn.execute(sa.select(journal_entries.c.auth_app_id).distinct()).scalars().all()
        assert [tuple(t) for t in totals] == [(MERCHANT_A, 1), (MERCHANT_B, 1)]
        assert sorted(journal) == [MERCHANT_A, MERCHANT_B]

    def test_an_apps_own_orders_keep_their_stream_ids_when_alipay_names_the_app_as_auth_app_id(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = f"I{uuid.uuid4().hex[:10]}"
        ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00")))
        record(ledger, alipay.body(order, auth_app_id=APP_ID))
        own = ledger.service.get_order(APP_ID, order)
        assert own is not None and own.id == Order.create_id(APP_ID, order) and own.status == "PAID"

    def test_a_merchants_order_is_registered_and_read_by_its_auth_app_id(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = f"I{uuid.uuid4().hex[:10]}"
        ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00"), merchant=MERCHANT_A))
        record(ledger, alipay.body(order, auth_app_id=MERCHANT_A, total_amount="66.00"))  # not what A registered
        got = ledger.service.get_order(APP_ID, order, merchant=MERCHANT_A)
        assert got is not None and got.mismatched_amounts == ["66.00"]  # checked against A's registration


class TestIsvOnSQLite(IsvContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url)


class TestIsvOnPostgres(IsvContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str) -> Ledger:
        return make_ledger(postgres_url)
