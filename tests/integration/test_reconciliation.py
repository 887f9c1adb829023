"""Three-way matching of a day (the bill, the ledger's bookings, the merchant's registrations) on SQLite and
PostgreSQL, against the stand-in gateway over HTTP: each kind of finding produced and settled, the carry-over
across midnight, reruns that change nothing, fees in the journal tying the clearing account to the bill's net."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from ledger.alipay.sandbox_bill import DAY, bill_zip
from ledger.bootstrap import Ledger
from ledger.domain.errors import InvalidRequest, NothingToDo
from ledger.service.application import RecordCallback, RegisterOrder
from ledger.service.reconciliation import BillMissing
from projections.queries.reconciliation import day_findings, days_report
from projections.tables import journal_entries
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn
from tests.support.reconciliation import at, book, clearing_movement, import_and_match, next_day, payment, refund
from tests.support.refs import ref


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, make_ledger: Callable[..., Ledger], alipay_gateway: StandIn) -> Ledger:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    return make_ledger(url, LEDGER_QUERY_SCHEDULE="off", **alipay_gateway.env())


def findings(ledger: Ledger, day: Any = DAY, **where: str) -> list[dict[str, Any]]:
    assert ledger.engine is not None and ledger.runner is not None
    ledger.runner.catch_up()
    return day_findings(ledger.engine, day, **where)


def kinds(ledger: Ledger, day: Any = DAY) -> Counter[str]:
    return Counter(f["kind"] for f in findings(ledger, day) if f["state"] in ("open", "carried"))


def test_a_day_the_ledger_and_the_bill_agree_on_matches_every_row_with_no_finding(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    a, b = ref("A"), ref("B")
    trades = [payment(a, "88.00", at(), fee="0.53"), payment(b, "10.00", at(hour=11), fee="0.06"),
              refund(a, "8.00", at(hour=12), "RF-1", fee="0.05")]
    book(ledger, alipay, trades)
    run = import_and_match(ledger, trades)
    assert run.counts["matched"] == 3 and sum(run.counts.values()) == 3 and run.opened == []
    assert findings(ledger) == []


def test_the_journal_clearing_account_ties_out_to_the_bills_net_on_a_matched_day(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    a, b = ref("A"), ref("B")
    trades = [payment(a, "88.00", at(), fee="0.53", share="0.10"), payment(b, "10.00", at(hour=11), fee="0.06",
                                                                          receipt="9.00"),
              refund(a, "8.00", at(hour=12), "RF-1", fee="0.05")]
    book(ledger, alipay, trades)
    assert ledger.bills is not None
    bill = ledger.bills.import_bill(bill_zip(trades), source="test", who="finance").bill
    assert ledger.reconcile is not None
    ledger.reconcile.match_day(DAY, who="finance")
    assert clearing_movement(ledger) == bill.net == Decimal("88.00") - Decimal("0.53") - Decimal("0.10") + Decimal(
        "9.00") - Decimal("0.06") - Decimal("8.00") + Decimal("0.05")
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        fees = conn.scalar(sa.select(sa.func.sum(journal_entries.c.amount)).where(
            journal_entries.c.account == "alipay_fees"))
        every_entry = conn.execute(sa.select(journal_entries.c.position, sa.func.sum(journal_entries.c.amount))
                                   .group_by(journal_entries.c.position)).all()
    assert fees == Decimal("0.54")  # 0.53 + 0.06 kept, 0.05 given back with the refund
    assert all(total == 0 for _, total in every_entry)


def test_rerunning_a_day_gives_the_same_findings_and_posts_no_fee_twice(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    a, b = ref("A"), ref("B")
    booked = [payment(a, "88.00", at(), fee="0.53")]
    book(ledger, alipay, booked)
    first = import_and_match(ledger, [*booked, payment(b, "10.00", at(hour=11))])
    assert ledger.reconcile is not None
    again = ledger.reconcile.match_day(DAY, who="finance")
    assert (again.run, again.opened, again.closed) == (2, [], [])
    assert kinds(ledger) == Counter({"missing_in_ledger": 1}) and len(first.opened) == 1
    assert clearing_movement(ledger) == Decimal("88.00") - Decimal("0.53")


def test_a_payment_the_ledger_never_heard_of_is_queried_at_once_and_booked_closing_its_finding(
        ledger: Ledger, alipay: SandboxAlipay, alipay_gateway: StandIn) -> None:
    lost = ref("L")
    ledger.service.register_order(RegisterOrder(APP_ID, lost, Decimal("10.00"), "测试商品"))
    # Paid on the bill's day; its notification never came.
    alipay_gateway.sandbox.add_trade(APP_ID, lost, "10.00", send_pay_date=at().strftime("%Y-%m-%d %H:%M:%S"))
    run = import_and_match(ledger, [payment(lost, "10.00", at(), fee="0.06")])
    [finding] = findings(ledger)
    assert finding["kind"] == "missing_in_ledger" and finding["state"] == "closed"
    assert finding["settled_by"] == "trade query" and list(run.queried.values()) == ["confirmed and booked"]
    # A second run, at once, matched the payment now booked and posted its fee.
    assert (run.run, run.counts["matched"]) == (2, 1)
    assert clearing_movement(ledger) == Decimal("9.94")


def test_a_payment_alipay_does_not_confirm_stays_an_open_finding(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    lost = ref("L")
    run = import_and_match(ledger, [payment(lost, "10.00", at())])  # the stand-in has no such trade
    [finding] = findings(ledger)
    assert (finding["kind"], finding["state"], finding["ledger_status"]) == ("missing_in_ledger", "open", None)
    assert next(iter(run.queried.values())).startswith("not confirmed")


def test_amounts_statuses_and_refunds_that_differ_are_each_a_finding_with_both_sides(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    differs, closed, unrefunded, refunded, short = ref("D"), ref("C"), ref("U"), ref("R"), ref("S")
    book(ledger, alipay, [payment(differs, "88.00", at()), payment(unrefunded, "20.00", at()),
                          payment(refunded, "30.00", at()), payment(short, "40.00", at()),
                          refund(refunded, "5.00", at(hour=12), "RF-R"), refund(short, "4.00", at(hour=12), "RF-S")],
         register=True)
    ledger.service.register_order(RegisterOrder(APP_ID, closed, Decimal("15.00"), "测试商品"))
    ledger.service.record_callback(RecordCallback(alipay.body(closed, trade_status="TRADE_CLOSED",
                                                              total_amount="15.00"), "198.51.100.7"))
    bill = [payment(differs, "80.00", at()), payment(closed, "15.00", at()), payment(unrefunded, "20.00", at()),
            refund(unrefunded, "2.00", at(hour=13), "RF-U"), payment(refunded, "30.00", at()),
            payment(short, "40.00", at()), refund(short, "3.00", at(hour=12), "RF-S")]
    import_and_match(ledger, bill)
    found = {f["kind"]: f for f in findings(ledger)}
    assert set(found) == {"amount_mismatch", "status_mismatch", "refund_missing_in_ledger", "refund_missing_in_bill",
                          "refund_amount_mismatch"}
    assert (found["amount_mismatch"]["bill_amount"], found["amount_mismatch"]["ledger_amount"]) == (
        Decimal("80.00"), Decimal("88.00"))
    assert found["status_mismatch"]["out_trade_no"] == closed and found["status_mismatch"]["ledger_status"] == "CLOSED"
    assert found["refund_missing_in_ledger"]["request_no"] == "RF-U"
    assert found["refund_missing_in_bill"]["request_no"] == "RF-R"
    assert (found["refund_amount_mismatch"]["bill_amount"], found["refund_amount_mismatch"]["ledger_amount"]) == (
        Decimal("-3.00"), Decimal("4.00"))


def test_a_payment_of_an_order_the_merchant_never_registered_is_unregistered(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    registered, stray = ref("G"), ref("X")
    book(ledger, alipay, [payment(registered, "10.00", at())], register=True)
    book(ledger, alipay, [payment(stray, "12.00", at())])
    import_and_match(ledger, [payment(registered, "10.00", at()), payment(stray, "12.00", at())])
    [finding] = findings(ledger)
    assert (finding["kind"], finding["out_trade_no"]) == ("unregistered", stray)


def test_a_payment_booked_just_before_midnight_is_carried_over_and_closed_by_the_next_days_bill(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    late = ref("M")
    book(ledger, alipay, [payment(late, "10.00", at(hour=23, minute=59, second=59))])
    import_and_match(ledger, [])
    [carried] = findings(ledger)
    assert (carried["kind"], carried["state"]) == ("missing_in_bill", "carried")
    report = days_report(_engine(ledger), day_from=DAY, day_to=DAY)
    assert report[0]["findings_carried"] == 1 and report[0]["findings_open"] == 0
    run = import_and_match(ledger, [payment(late, "10.00", at(next_day(), 0, 0, 2))], day=next_day())
    assert run.counts["matched"] == 1
    [settled] = findings(ledger)
    assert (settled["state"], settled["settled_by"]) == ("closed", f"bill of {next_day()}")


def test_a_carried_payment_the_next_days_bill_lacks_too_counts_then(ledger: Ledger, alipay: SandboxAlipay) -> None:
    late = ref("M")
    book(ledger, alipay, [payment(late, "10.00", at(hour=23, minute=59))])
    import_and_match(ledger, [])
    import_and_match(ledger, [], day=next_day())
    [finding] = findings(ledger)
    assert (finding["kind"], finding["state"]) == ("missing_in_bill", "open")


def test_a_finding_is_resolved_with_who_and_why_once(ledger: Ledger, alipay: SandboxAlipay) -> None:
    run = import_and_match(ledger, [payment(ref("L"), "10.00", at())])
    assert ledger.reconcile is not None
    finding_id = UUID(run.opened[0])
    with pytest.raises(InvalidRequest):
        ledger.reconcile.resolve(finding_id, who="finance bob", note="  ")
    ledger.reconcile.resolve(finding_id, who="finance bob", note="a test payment, refunded by hand")
    with pytest.raises(NothingToDo):
        ledger.reconcile.resolve(finding_id, who="finance eve", note="again")
    [shown] = findings(ledger)
    assert (shown["state"], shown["settled_by"], shown["note"]) == (
        "resolved", "finance bob", "a test payment, refunded by hand")
    rerun = ledger.reconcile.match_day(DAY, who="finance")
    assert rerun.opened == [] and findings(ledger)[0]["state"] == "resolved"


def test_a_finding_later_evidence_settles_is_closed_by_the_rerun(ledger: Ledger, alipay: SandboxAlipay) -> None:
    late = ref("N")
    trades = [payment(late, "10.00", at())]
    import_and_match(ledger, trades)
    book(ledger, alipay, trades)  # the notification arrives after all
    assert ledger.reconcile is not None
    rerun = ledger.reconcile.match_day(DAY, who="finance")
    [finding] = findings(ledger)
    assert finding["state"] == "closed" and rerun.closed == [finding["finding_id"]]


def test_a_day_without_a_bill_says_so_and_records_nothing(ledger: Ledger) -> None:
    assert ledger.reconcile is not None
    head = ledger.store.ping()
    with pytest.raises(BillMissing):
        ledger.reconcile.match_day(DAY, who="finance")
    assert ledger.store.ping() == head


def test_rebuilding_the_read_model_gives_the_rows_it_had(ledger: Ledger, alipay: SandboxAlipay) -> None:
    a = ref("A")
    book(ledger, alipay, [payment(a, "88.00", at(), fee="0.53")])
    run = import_and_match(ledger, [payment(a, "88.00", at(), fee="0.53"), payment(ref("L"), "10.00", at())])
    assert ledger.reconcile is not None
    ledger.reconcile.resolve(UUID(run.opened[0]), who="finance", note="checked")
    assert ledger.runner is not None
    before = _tables(ledger)
    ledger.runner.rebuild()
    assert _tables(ledger) == before


def _engine(ledger: Ledger) -> sa.Engine:
    assert ledger.engine is not None and ledger.runner is not None
    ledger.runner.catch_up()
    return ledger.engine


def _tables(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    from projections.tables import reconciliation_days, reconciliation_findings, refunds

    engine = _engine(ledger)
    with engine.connect() as conn:
        return {t.name: sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(t)))
                for t in (refunds, reconciliation_days, reconciliation_findings, journal_entries)}
