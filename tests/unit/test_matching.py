"""The three-way matching (ledger.domain.matching) as a pure function: each kind from a minimal case, which kind wins
when several would apply, refunds without a request number, a row listed twice, the bills either side, the same
findings whatever order the evidence comes in, and on generated days findings that are exactly the perturbations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.alipay.sandbox_bill import BillTrade
from ledger.domain.matching import (
    BillEntry,
    Finding,
    LedgerRefund,
    LedgerTrade,
    Matching,
    match,
    payment_key,
    refund_key,
)
from tests.support.generated_days import GeneratedDay, days, key_of

DAY = date(2019, 9, 16)


def bill_payment(out_trade_no: str, amount: str, *, line: int = 1, trade_no: str | None = None,
                 fee: str = "0.00") -> BillEntry:
    total = Decimal(amount)
    return BillEntry("payment", out_trade_no, trade_no or f"T-{out_trade_no}", "", total, total, -Decimal(fee),
                     Decimal("0.00"), line)


def bill_refund(out_trade_no: str, amount: str, request_no: str, *, line: int = 2) -> BillEntry:
    total = -Decimal(amount)
    return BillEntry("refund", out_trade_no, f"T-{out_trade_no}", request_no, total, total, Decimal("0.00"),
                     Decimal("0.00"), line)


def paid(out_trade_no: str, amount: str, *, registered: str | None = None, trade_no: str | None = None,
         day: date = DAY) -> LedgerTrade:
    return LedgerTrade(out_trade_no, "PAID", trade_no or f"T-{out_trade_no}", Decimal(amount),
                       registered is not None, Decimal(registered) if registered else None, False, day)


def unpaid(out_trade_no: str, status: str, *, registered: str | None = None) -> LedgerTrade:
    return LedgerTrade(out_trade_no, status, None, None, registered is not None,
                       Decimal(registered) if registered else None, False, None)


def refunded(out_trade_no: str, amount: str, request_no: str, *, day: date = DAY) -> LedgerRefund:
    return LedgerRefund(out_trade_no, request_no, Decimal(amount), day)


def run(rows: Iterable[BillEntry], trades: Iterable[LedgerTrade] = (), refunds: Iterable[LedgerRefund] = (), *,
        neighbours: Iterable[str] = (), next_bill: bool = True, registration: bool = False) -> Matching:
    """Match as the service does: the ledger's trades and refunds are all it has, those of DAY booked on it."""
    trades, refunds = list(trades), list(refunds)
    by_order: dict[str, list[LedgerRefund]] = {}
    for refund in refunds:
        by_order.setdefault(refund.out_trade_no, []).append(refund)
    return match(DAY, list(rows), {t.out_trade_no: t for t in trades}, by_order,
                 booked_payments=[t.out_trade_no for t in trades if t.paid_day == DAY],
                 booked_refunds=[r for r in refunds if r.day == DAY], neighbours=frozenset(neighbours),
                 next_bill=next_bill, registration=registration)


def kinds(result: Matching) -> list[tuple[str, str]]:
    return [(f.kind, f.key) for f in result.findings]


def test_a_payment_booked_as_the_bill_has_it_matches_with_no_finding() -> None:
    row = bill_payment("A", "88.00", fee="0.53")
    result = run([row], [paid("A", "88.00")])
    assert result.matched == [row] and result.findings == []


def test_a_refund_booked_as_the_bill_has_it_matches_with_no_finding() -> None:
    rows = [bill_payment("A", "88.00"), bill_refund("A", "8.00", "RF-1")]
    result = run(rows, [paid("A", "88.00")], [refunded("A", "8.00", "RF-1")])
    assert result.matched == rows and result.findings == []


def test_a_bill_payment_of_an_order_the_ledger_never_heard_of_is_missing_in_ledger() -> None:
    row = bill_payment("L", "10.00")
    [finding] = run([row]).findings
    assert (finding.kind, finding.key, finding.bill, finding.ledger) == ("missing_in_ledger", "payment:L", row, None)
    assert finding.detail.endswith("and no order")


def test_a_bill_payment_of_an_order_the_ledger_has_pending_is_missing_in_ledger() -> None:
    [finding] = run([bill_payment("P", "10.00")], [unpaid("P", "PENDING", registered="10.00")]).findings
    assert finding.kind == "missing_in_ledger" and finding.ledger is not None
    assert finding.detail.endswith("the ledger has no payment of it")


def test_a_payment_the_ledger_booked_on_the_day_the_bill_lacks_is_missing_in_bill() -> None:
    trade = paid("B", "10.00")
    [finding] = run([], [trade]).findings
    assert (finding.kind, finding.key, finding.ledger, finding.bill) == ("missing_in_bill", "payment:B", trade, None)


def test_a_payment_booked_on_another_day_is_not_looked_for_on_this_bill() -> None:
    assert run([], [paid("B", "10.00", day=DAY - timedelta(days=3))]).findings == []


def test_a_payment_booked_for_another_amount_is_an_amount_mismatch() -> None:
    [finding] = run([bill_payment("A", "80.00")], [paid("A", "88.00")]).findings
    assert (finding.kind, finding.key) == ("amount_mismatch", "payment:A")
    assert "the ledger booked 88.00" in finding.detail


def test_a_payment_booked_as_the_bill_has_it_but_registered_for_another_amount_is_an_amount_mismatch() -> None:
    [finding] = run([bill_payment("A", "88.00")], [paid("A", "88.00", registered="80.00")],
                    registration=True).findings
    assert finding.kind == "amount_mismatch" and "registered the order for 80.00" in finding.detail


def test_a_payment_the_ledger_booked_under_another_trade_number_is_a_status_mismatch() -> None:
    [finding] = run([bill_payment("A", "88.00", trade_no="T-1")], [paid("A", "88.00", trade_no="T-2")]).findings
    assert finding.kind == "status_mismatch" and "trade T-2" in finding.detail


def test_a_closed_order_the_bill_has_paid_is_a_status_mismatch_even_if_registered_for_another_amount() -> None:
    [finding] = run([bill_payment("C", "15.00")], [unpaid("C", "CLOSED", registered="99.00")],
                    registration=True).findings
    assert (finding.kind, finding.key) == ("status_mismatch", "payment:C")
    assert finding.detail.endswith("the ledger has the order closed unpaid")


def test_a_registered_amount_that_differs_with_no_payment_booked_is_an_amount_mismatch() -> None:
    [finding] = run([bill_payment("R", "15.00")], [unpaid("R", "PENDING", registered="12.00")],
                    registration=True).findings
    assert finding.kind == "amount_mismatch" and finding.detail.endswith("and the ledger booked no payment")


def test_an_order_the_merchant_never_registered_is_unregistered_only_when_the_merchant_registers_orders() -> None:
    rows, trades = [bill_payment("X", "12.00")], [paid("X", "12.00")]
    [finding] = run(rows, trades, registration=True).findings
    assert (finding.kind, finding.key) == ("unregistered", "payment:X")
    without = run(rows, trades, registration=False)
    assert without.findings == [] and without.matched == rows


def test_a_refund_the_ledger_has_not_is_refund_missing_in_ledger() -> None:
    rows = [bill_payment("A", "88.00"), bill_refund("A", "8.00", "RF-1")]
    result = run(rows, [paid("A", "88.00")])
    assert kinds(result) == [("refund_missing_in_ledger", "refund:A/RF-1")] and result.matched == rows[:1]


def test_a_refund_the_ledger_booked_on_the_day_the_bill_lacks_is_refund_missing_in_bill() -> None:
    result = run([bill_payment("A", "88.00")], [paid("A", "88.00")], [refunded("A", "8.00", "RF-1")])
    assert kinds(result) == [("refund_missing_in_bill", "refund:A/RF-1")]


def test_a_refund_booked_for_another_amount_is_a_refund_amount_mismatch() -> None:
    rows = [bill_payment("A", "88.00"), bill_refund("A", "3.00", "RF-1")]
    [finding] = run(rows, [paid("A", "88.00")], [refunded("A", "4.00", "RF-1")]).findings
    assert (finding.kind, finding.key) == ("refund_amount_mismatch", "refund:A/RF-1")
    assert "the ledger booked 4.00" in finding.detail


def test_refunds_notified_without_a_request_number_are_matched_by_amount_one_row_each() -> None:
    rows = [bill_refund("A", "5.00", "RF-1", line=2), bill_refund("A", "3.00", "RF-2", line=3)]
    result = run(rows, [], [refunded("A", "3.00", ""), refunded("A", "5.00", "")])
    assert result.findings == [] and result.matched == rows


def test_a_refund_without_a_request_number_of_another_amount_is_not_taken_for_the_bills() -> None:
    result = run([bill_refund("A", "5.00", "RF-1")], [], [refunded("A", "4.00", "")])
    assert kinds(result) == [("refund_missing_in_ledger", "refund:A/RF-1"),
                             ("refund_missing_in_bill", "refund:A/A")]


def test_a_refund_the_bill_made_without_a_request_number_is_keyed_by_the_order() -> None:
    assert refund_key("A", "") == refund_key("A", "A") == "refund:A/A"
    row = bill_refund("A", "5.00", "")
    assert row.key == "refund:A/A" and run([row], [], [refunded("A", "5.00", "")]).matched == [row]


def test_a_bill_row_listed_twice_is_matched_once_and_its_repeat_is_a_status_mismatch_by_line() -> None:
    first, again = bill_payment("A", "88.00", line=4), bill_payment("A", "88.00", line=9)
    result = run([again, first], [paid("A", "88.00")])
    assert result.matched == [first]
    assert kinds(result) == [("status_mismatch", "payment:A#line9")]


def test_what_a_bill_of_the_days_either_side_has_is_not_missing_from_this_one() -> None:
    trades, refunds = [paid("A", "88.00")], [refunded("A", "8.00", "RF-1")]
    assert len(run([], trades, refunds).findings) == 2
    assert run([], trades, refunds, neighbours={payment_key("A"), refund_key("A", "RF-1")}).findings == []


def test_missing_from_the_bill_is_carried_over_while_the_next_days_bill_is_not_there() -> None:
    trades, refunds = [paid("A", "88.00")], [refunded("A", "8.00", "RF-1")]
    waiting = run([], trades, refunds, next_bill=False).findings
    assert [f.carried for f in waiting] == [True, True]
    assert all("carried over to the next day's bill" in f.detail for f in waiting)
    counted = run([], trades, refunds, next_bill=True).findings
    assert [f.carried for f in counted] == [False, False]
    assert all("neither that day's bill nor the next day's has it" in f.detail for f in counted)


def test_counts_have_every_kind_and_the_rows_matched() -> None:
    result = run([bill_payment("A", "88.00"), bill_payment("L", "1.00", line=2)], [paid("A", "88.00")])
    counts = result.counts()
    assert counts["matched"] == 1 and counts["missing_in_ledger"] == 1 and sum(counts.values()) == 2
    assert len(counts) == 9


_ROWS = [bill_payment("A", "88.00", line=1), bill_refund("A", "8.00", "RF-1", line=2),
         bill_refund("A", "5.00", "RF-2", line=3), bill_payment("D", "80.00", line=4),
         bill_payment("L", "10.00", line=5), bill_payment("A", "88.00", line=6), bill_refund("E", "2.00", "", line=7),
         bill_payment("E", "20.00", line=8)]
_TRADES = [paid("A", "88.00"), paid("D", "88.00"), paid("E", "20.00"), paid("M", "7.00"), paid("N", "9.00")]
_REFUNDS = [refunded("A", "8.00", ""), refunded("A", "5.00", ""), refunded("A", "1.00", "RF-9"),
            refunded("E", "2.00", "E"), refunded("N", "9.00", "RF-N")]


def _facts(result: Matching) -> tuple[list[Finding], list[BillEntry]]:
    return result.findings, result.matched


@settings(max_examples=50)
@given(st.permutations(_ROWS), st.permutations(_TRADES), st.permutations(_REFUNDS))
def test_the_same_evidence_in_another_order_gives_the_same_findings(
        rows: list[BillEntry], trades: list[LedgerTrade], refunds: list[LedgerRefund]) -> None:
    assert _facts(run(rows, trades, refunds)) == _facts(run(_ROWS, _TRADES, _REFUNDS))


def _entries(bill: Iterable[BillTrade]) -> list[BillEntry]:
    entries = []
    for line, trade in enumerate(bill, start=6):
        total, receipt, fee, share = trade.signed()
        entries.append(BillEntry(trade.kind, trade.out_trade_no, trade.trade_no, trade.refund_request_no, total,
                                 receipt, fee, share, line))
    return entries


def _ledger(day: GeneratedDay) -> tuple[list[LedgerTrade], list[LedgerRefund]]:
    """The ledger's read model after it was told the day's trades."""
    trades, refunds = [], []
    for trade in day.told:
        if trade.kind == "payment":
            registered = trade.out_trade_no in day.registered
            trades.append(LedgerTrade(trade.out_trade_no, "PAID", trade.trade_no, trade.amount, registered,
                                      trade.amount if registered else None, False, trade.finished_at.date()))
        else:
            refunds.append(LedgerRefund(trade.out_trade_no, trade.refund_request_no, trade.amount,
                                        trade.finished_at.date()))
    for shut in day.closed:
        registered = shut.out_trade_no in day.registered
        trades.append(LedgerTrade(shut.out_trade_no, "CLOSED", None, None, registered,
                                  shut.amount if registered else None, False, None))
    return trades, refunds


@settings(max_examples=300)
@given(days(orders=10))
def test_on_a_generated_day_the_findings_are_exactly_the_bills_perturbations_and_the_rest_matches(
        day: GeneratedDay) -> None:
    trades, refunds = _ledger(day)
    result = run(_entries(day.bill), trades, refunds, registration=day.registration)
    assert {(f.kind, f.key) for f in result.findings} == day.expected
    assert len(result.findings) == len(day.expected)
    assert {row.key for row in result.matched} == day.untouched and len(result.matched) == len(day.untouched)


@settings(max_examples=50)
@given(days(perturb=False, orders=10))
def test_a_generated_day_whose_bill_is_what_the_ledger_was_told_matches_every_row(day: GeneratedDay) -> None:
    trades, refunds = _ledger(day)
    result = run(_entries(day.bill), trades, refunds, registration=day.registration)
    assert result.findings == [] and {row.key for row in result.matched} == {key_of(t) for t in day.told}
