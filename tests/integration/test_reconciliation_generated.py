"""Generated days matched end to end on SQLite and PostgreSQL, each in a database of its own: the trades told to
the ledger by signed notifications, the bill Alipay would give with random perturbations imported, the day
matched. The findings are exactly the perturbations, a rerun finds the same, and the clearing account moves by
the ledger's bookings and the fees of the rows that matched: by the bill's 实收净额 when nothing was perturbed."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from ledger.adapters.sql.migrations import migrate
from ledger.alipay.sandbox_bill import DAY, bill_zip
from ledger.bootstrap import Ledger, build
from ledger.config import Settings
from ledger.service.application import RecordCallback, RegisterOrder
from projections.queries.reconciliation import day_findings
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn
from tests.support.generated_days import GeneratedDay, days, key_of
from tests.support.isolation import create_database, drop_database
from tests.support.reconciliation import TIME, book, clearing_movement

# No shrinking: each example makes a database, so shrinking a failure would take minutes; the unit-level property
# (tests/unit/test_matching.py) shrinks the matching's own failures.
EXAMPLES = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def fresh_ledger(backend: str, folder: Path, alipay: SandboxAlipay, gateway: StandIn) -> Iterator[Ledger]:
    """A ledger on a database of its own: a generated day must meet no other's orders or registrations."""
    name, url = create_database() if backend == "postgres" else ("", f"sqlite:///{folder}/{uuid.uuid4().hex}.db")
    try:
        migrate(url)
        ledger = build(Settings.from_env({**alipay.env(), **gateway.env(), "LEDGER_DATABASE_URL": url,
                                          "LEDGER_LOCK_WAIT_MS": "10000", "LEDGER_QUERY_SCHEDULE": "off"}))
        try:
            yield ledger
        finally:
            ledger.close()
    finally:
        if name:
            drop_database(name)


def tell(ledger: Ledger, alipay: SandboxAlipay, day: GeneratedDay) -> None:
    """The merchant registers its orders, Alipay notifies the payments, refunds and closings."""
    for order in (*day.told, *day.closed):
        if order.kind == "payment" and order.out_trade_no in day.registered:
            ledger.service.register_order(RegisterOrder(APP_ID, order.out_trade_no, order.amount, "测试商品"))
    book(ledger, alipay, day.told)
    for shut in day.closed:
        ledger.service.record_callback(RecordCallback(alipay.body(
            shut.out_trade_no, trade_status="TRADE_CLOSED", total_amount=str(shut.amount),
            gmt_close=shut.finished_at.strftime(TIME), gmt_payment=None), "198.51.100.7"))


def open_findings(ledger: Ledger) -> set[tuple[str, str]]:
    assert ledger.engine is not None and ledger.runner is not None
    ledger.runner.catch_up()
    found = day_findings(ledger.engine, DAY)
    assert all(f["state"] in ("open", "carried") for f in found)
    return {(f["kind"], f["key"]) for f in found}


def clearing_expected(day: GeneratedDay) -> Decimal:
    """The ledger's bookings (a payment into clearing, a refund out of it), and for each row that matched what
    clearing gave up to the fee, the share and the discount, signed as the bill writes them."""
    booked = sum((t.amount if t.kind == "payment" else -t.amount for t in day.told), Decimal("0.00"))
    posted = Decimal("0.00")
    for row in day.bill:
        if key_of(row) in day.untouched:
            total, receipt, fee, share = row.signed()
            posted += receipt - total + fee + share
    return booked + posted


@EXAMPLES
@given(day=days(orders=5))
def test_a_generated_day_matched_in_the_ledger_finds_exactly_the_bills_perturbations_and_again_on_a_rerun(
        backend: str, tmp_path: Path, alipay: SandboxAlipay, alipay_gateway: StandIn, day: GeneratedDay) -> None:
    with fresh_ledger(backend, tmp_path, alipay, alipay_gateway) as ledger:
        tell(ledger, alipay, day)
        assert ledger.bills is not None and ledger.reconcile is not None
        ledger.bills.import_bill(bill_zip(list(day.bill)), source="test", who="finance")
        run = ledger.reconcile.match_day(DAY, who="finance")
        assert open_findings(ledger) == day.expected
        assert run.counts == {**dict.fromkeys(run.counts, 0), **Counter(kind for kind, _ in day.expected),
                              "matched": len(day.untouched)}
        assert clearing_movement(ledger) == clearing_expected(day)
        rerun = ledger.reconcile.match_day(DAY, who="finance")
        assert (rerun.run, rerun.opened, rerun.closed, rerun.counts) == (2, [], [], run.counts)
        assert open_findings(ledger) == day.expected
        assert clearing_movement(ledger) == clearing_expected(day)


@settings(EXAMPLES, max_examples=3)
@given(day=days(perturb=False, orders=5))
def test_on_a_generated_day_the_bill_agrees_with_the_clearing_account_moves_by_its_net(
        backend: str, tmp_path: Path, alipay: SandboxAlipay, alipay_gateway: StandIn, day: GeneratedDay) -> None:
    with fresh_ledger(backend, tmp_path, alipay, alipay_gateway) as ledger:
        tell(ledger, alipay, day)
        assert ledger.bills is not None and ledger.reconcile is not None
        bill = ledger.bills.import_bill(bill_zip(list(day.bill)), source="test", who="finance").bill
        run = ledger.reconcile.match_day(DAY, who="finance")
        assert run.counts["matched"] == len(day.bill) == len(day.told) and open_findings(ledger) == set()
        assert clearing_movement(ledger) == bill.net
