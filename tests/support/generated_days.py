"""Generated days of trades for property tests of the matching: what the ledger is told (payments with fees, shares
and discounts, some refunded once or twice, orders closed unpaid), the bill Alipay would give for them with random
perturbations, and what the matching must then find: exactly the perturbations, every other row matched."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import strategies as st

from ledger.alipay.sandbox import trade_number
from ledger.alipay.sandbox_bill import BillTrade
from ledger.domain.matching import (
    AMOUNT_MISMATCH,
    MISSING_IN_BILL,
    MISSING_IN_LEDGER,
    REFUND_AMOUNT_MISMATCH,
    REFUND_MISSING_IN_BILL,
    REFUND_MISSING_IN_LEDGER,
    STATUS_MISMATCH,
    UNREGISTERED,
    payment_key,
    refund_key,
)
from tests.support.reconciliation import at

KEEP, DROP, AMOUNT, UNREGISTER = "keep", "drop", "amount", "unregister"


@dataclass(frozen=True)
class GeneratedDay:
    told: tuple[BillTrade, ...]  # notified to the ledger in this order, each payment before its refunds
    closed: tuple[BillTrade, ...]  # orders the ledger has closed unpaid (notified TRADE_CLOSED); the bill has them paid
    registered: frozenset[str]  # the orders the merchant registered first (paid or closed)
    bill: tuple[BillTrade, ...]  # the bill's rows in its order
    expected: frozenset[tuple[str, str]]  # the findings the matching must give: (kind, key)
    untouched: frozenset[str]  # the keys of the bill's rows it must match

    @property
    def registration(self) -> bool:
        return bool(self.registered)


def key_of(trade: BillTrade) -> str:
    return payment_key(trade.out_trade_no) if trade.kind == "payment" else refund_key(trade.out_trade_no,
                                                                                    trade.refund_request_no)


def _yuan(cents: int) -> Decimal:
    return Decimal(cents) / 100


@st.composite
def days(draw: st.DrawFn, *, perturb: bool = True, orders: int = 6) -> GeneratedDay:
    """A day of 1 to `orders` paid orders; `perturb` False: the bill is exactly what the ledger was told."""
    register = draw(st.booleans())
    changes = (KEEP, DROP, AMOUNT, UNREGISTER) if register else (KEEP, DROP, AMOUNT)
    change = st.sampled_from(changes if perturb else (KEEP,))
    refund_change = st.sampled_from((KEEP, DROP, AMOUNT) if perturb else (KEEP,))
    delta = st.integers(1, 500).map(_yuan)
    told: list[BillTrade] = []
    bill: list[BillTrade] = []
    registered: set[str] = set()
    expected: set[tuple[str, str]] = set()
    unregistered: list[str] = []
    untouched: set[str] = set()
    count = draw(st.integers(1, orders))
    for n in range(count):
        out_trade_no, when = f"G{n}", at(hour=1 + n)
        cents = draw(st.integers(100, 100_000))
        fee, share, discount = (draw(st.integers(0, cents // 100)), draw(st.integers(0, cents // 200)),
                                draw(st.integers(0, cents // 5)))
        paid = BillTrade("payment", out_trade_no, trade_number(out_trade_no), _yuan(cents), when, fee=_yuan(fee),
                         share=_yuan(share), receipt_amount=_yuan(cents - discount) if discount else None)
        told.append(paid)
        what = draw(change)
        if what != UNREGISTER and register:
            registered.add(out_trade_no)
        if what == DROP:
            expected.add((MISSING_IN_BILL, key_of(paid)))
        elif what == AMOUNT:
            more = draw(delta)
            bill.append(replace(paid, amount=paid.amount + more, receipt_amount=(
                None if paid.receipt_amount is None else paid.receipt_amount + more)))
            expected.add((AMOUNT_MISMATCH, key_of(paid)))
        else:
            bill.append(paid)
            if what == UNREGISTER:
                unregistered.append(key_of(paid))
            else:
                untouched.add(key_of(paid))
        left = cents
        for r in range(draw(st.integers(0, 2))):
            if left < 1:
                break
            back = draw(st.integers(1, left))
            left -= back
            refund = BillTrade("refund", out_trade_no, paid.trade_no, _yuan(back), when + timedelta(minutes=1 + r),
                               fee=_yuan(draw(st.integers(0, fee))), refund_request_no=f"RF-{n}-{r}")
            told.append(refund)
            what = draw(refund_change)
            if what == DROP:
                expected.add((REFUND_MISSING_IN_BILL, key_of(refund)))
            elif what == AMOUNT:
                bill.append(replace(refund, amount=refund.amount + draw(delta)))
                expected.add((REFUND_AMOUNT_MISMATCH, key_of(refund)))
            else:
                bill.append(refund)
                untouched.add(key_of(refund))
    closed = []
    if perturb:
        for n in range(draw(st.integers(0, 2))):  # payments Alipay has that the ledger never heard of
            extra = BillTrade("payment", f"X{n}", trade_number(f"X{n}"), _yuan(draw(st.integers(100, 10_000))),
                              at(hour=20, minute=n))
            bill.append(extra)
            expected.add((MISSING_IN_LEDGER, key_of(extra)))
        for n in range(draw(st.integers(0, 2))):  # refunds Alipay made that the ledger never heard of
            order = told[0] if n == 0 else draw(st.sampled_from([t for t in told if t.kind == "payment"]))
            extra = replace(order, kind="refund", amount=_yuan(draw(st.integers(1, 1000))), fee=Decimal("0.00"),
                            share=Decimal("0.00"), receipt_amount=None, refund_request_no=f"RF-X{n}",
                            finished_at=at(hour=21, minute=n))
            bill.append(extra)
            expected.add((REFUND_MISSING_IN_LEDGER, key_of(extra)))
        for n in range(draw(st.integers(0, 2))):  # orders the ledger has closed unpaid, paid on the bill
            shut = BillTrade("payment", f"C{n}", trade_number(f"C{n}"), _yuan(draw(st.integers(100, 10_000))),
                             at(hour=22, minute=n))
            closed.append(shut)
            bill.append(shut)
            if register:
                registered.add(shut.out_trade_no)
            expected.add((STATUS_MISMATCH, key_of(shut)))
    # An order the merchant did not register is a finding only if it registers others: else none is registered.
    if registered:
        expected.update((UNREGISTERED, key) for key in unregistered)
    else:
        untouched.update(unregistered)
    return GeneratedDay(tuple(told), tuple(closed), frozenset(registered), tuple(draw(st.permutations(bill))),
                        frozenset(expected), frozenset(untouched))

