"""Three-way matching of one app's China-Standard-Time day (对账): Alipay's bill, the trades the ledger recorded,
and the orders the merchant registered. A pure function of the three: the same evidence gives the same findings.

A payment is keyed by its out_trade_no, a refund by (out_trade_no, its request number). A bill row is looked up in
the ledger whatever day the ledger booked it on; what the ledger booked on the day and the bill lacks is looked for
on the bills of the days either side (a payment just before midnight can land on the next day's bill), and is
carried over while the next day's bill is not there yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

MATCHED = "matched"
MISSING_IN_LEDGER, MISSING_IN_BILL = "missing_in_ledger", "missing_in_bill"
AMOUNT_MISMATCH, STATUS_MISMATCH = "amount_mismatch", "status_mismatch"
REFUND_MISSING_IN_LEDGER, REFUND_MISSING_IN_BILL = "refund_missing_in_ledger", "refund_missing_in_bill"
REFUND_AMOUNT_MISMATCH, UNREGISTERED = "refund_amount_mismatch", "unregistered"
KINDS = (MISSING_IN_LEDGER, MISSING_IN_BILL, AMOUNT_MISMATCH, STATUS_MISMATCH, REFUND_MISSING_IN_LEDGER,
         REFUND_MISSING_IN_BILL, REFUND_AMOUNT_MISMATCH, UNREGISTERED)
CARRIED_KINDS = (MISSING_IN_BILL, REFUND_MISSING_IN_BILL)  # wait for the next day's bill before they count


@dataclass(frozen=True, slots=True)
class BillEntry:
    """A bill row as matching needs it: amounts signed as the bill writes them (a refund's are negative)."""

    kind: str  # payment or refund
    out_trade_no: str
    trade_no: str
    request_no: str  # a refund's 退款批次号/请求号 (its out_request_no); "" for a payment
    total_amount: Decimal  # 订单金额
    receipt_amount: Decimal  # 商家实收
    fee: Decimal  # 服务费
    share: Decimal  # 分润
    line: int

    @property
    def key(self) -> str:
        return payment_key(self.out_trade_no) if self.kind == "payment" else refund_key(self.out_trade_no,
                                                                                        self.request_no)


@dataclass(frozen=True, slots=True)
class LedgerTrade:
    """An order as the ledger has it (its read model)."""

    out_trade_no: str
    status: str  # PENDING, PAID, FINISHED, CLOSED
    trade_no: str | None
    paid_amount: Decimal | None  # None: no payment booked
    registered: bool
    registered_amount: Decimal | None
    amount_mismatch: bool  # a notification's amount differed from the registered one, and was not booked
    paid_day: date | None


@dataclass(frozen=True, slots=True)
class LedgerRefund:
    out_trade_no: str
    request_no: str  # the notification's out_biz_no ("" when it had none)
    amount: Decimal  # what this refund gave back
    day: date


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str  # payment:<out_trade_no> or refund:<out_trade_no>/<request_no>
    out_trade_no: str
    request_no: str
    detail: str
    bill: BillEntry | None = None
    ledger: LedgerTrade | LedgerRefund | None = None
    carried: bool = False  # missing from the bill, waiting for the next day's


@dataclass
class Matching:
    findings: list[Finding] = field(default_factory=list)
    matched: list[BillEntry] = field(default_factory=list)  # the rows the ledger agrees with (their fees are posted)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((MATCHED, *KINDS), 0)
        counts[MATCHED] = len(self.matched)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts


def payment_key(out_trade_no: str) -> str:
    return f"payment:{out_trade_no}"


def refund_key(out_trade_no: str, request_no: str) -> str:
    # A refund made without out_request_no has the out_trade_no as its request number (Alipay's rule).
    return f"refund:{out_trade_no}/{request_no or out_trade_no}"


def match(day: date, rows: Iterable[BillEntry], trades: Mapping[str, LedgerTrade],
          refunds: Mapping[str, list[LedgerRefund]], *, booked_payments: Iterable[str],
          booked_refunds: Iterable[LedgerRefund], neighbours: frozenset[str], next_bill: bool,
          registration: bool) -> Matching:
    """`trades`: the ledger's orders by out_trade_no (at least every one the bill names or that was paid on the day);
    `refunds`: the ledger's refunds by out_trade_no; `booked_payments`/`booked_refunds`: what the ledger booked on
    `day`; `neighbours`: the keys on the bills of the days either side that are imported; `next_bill`: whether
    the next day's is; `registration`: whether the merchant registers its orders (else none is `unregistered`)."""
    result = Matching()
    on_bill: set[str] = set()
    claimed: set[int] = set()  # the ledger refunds a bill row took (by id), so two rows never take one
    for row in sorted(rows, key=lambda r: r.line):
        if row.key in on_bill:
            result.findings.append(Finding(STATUS_MISMATCH, f"{row.key}#line{row.line}", row.out_trade_no,
                                           row.request_no, f"the bill lists {row.key} again (line {row.line})",
                                           bill=row))
            continue
        on_bill.add(row.key)
        if row.kind == "payment":
            _payment(row, trades.get(row.out_trade_no), registration, result)
        else:
            _refund(row, refunds.get(row.out_trade_no, []), claimed, result)
    for out_trade_no in sorted(set(booked_payments)):
        key = payment_key(out_trade_no)
        if key not in on_bill and key not in neighbours:
            trade = trades[out_trade_no]
            result.findings.append(Finding(MISSING_IN_BILL, key, out_trade_no, "", _missing_in_bill(
                f"the ledger booked the payment of {trade.paid_amount} (trade {trade.trade_no})", day, next_bill),
                ledger=trade, carried=not next_bill))
    for refund in sorted(booked_refunds, key=lambda r: (r.out_trade_no, r.request_no)):
        key = refund_key(refund.out_trade_no, refund.request_no)
        if key not in on_bill and key not in neighbours and id(refund) not in claimed:
            result.findings.append(Finding(REFUND_MISSING_IN_BILL, key, refund.out_trade_no, refund.request_no,
                                           _missing_in_bill(f"the ledger booked a refund of {refund.amount}", day,
                                                            next_bill), ledger=refund, carried=not next_bill))
    return result


def _payment(row: BillEntry, trade: LedgerTrade | None, registration: bool, result: Matching) -> None:
    def found(kind: str, detail: str) -> None:
        result.findings.append(Finding(kind, row.key, row.out_trade_no, "", detail, bill=row, ledger=trade))

    paid = f"Alipay's bill has the payment of {row.total_amount} (trade {row.trade_no})"
    registered = trade is not None and trade.registered and trade.registered_amount is not None
    if trade is None or trade.paid_amount is None:
        if trade is not None and trade.status == "CLOSED":
            found(STATUS_MISMATCH, f"{paid}; the ledger has the order closed unpaid")
        elif trade is not None and registered and trade.registered_amount != row.total_amount:
            found(AMOUNT_MISMATCH, f"{paid}; the merchant registered the order for {trade.registered_amount}, "
                                   "and the ledger booked no payment")
        else:
            found(MISSING_IN_LEDGER, f"{paid}; the ledger has no payment of it"
                                     + ("" if trade is not None else " and no order"))
    elif trade.trade_no != row.trade_no:
        found(STATUS_MISMATCH, f"{paid}; the ledger booked trade {trade.trade_no} for the order")
    elif trade.paid_amount != row.total_amount:
        found(AMOUNT_MISMATCH, f"{paid}; the ledger booked {trade.paid_amount}")
    elif registered and trade.registered_amount != row.total_amount:
        found(AMOUNT_MISMATCH, f"{paid}, as the ledger booked; the merchant registered the order for "
                               f"{trade.registered_amount}")
    elif registration and not trade.registered:
        found(UNREGISTERED, f"{paid}, as the ledger booked; the merchant never registered the order")
    else:
        result.matched.append(row)


def _refund(row: BillEntry, booked: list[LedgerRefund], claimed: set[int], result: Matching) -> None:
    amount = -row.total_amount
    free = [r for r in booked if id(r) not in claimed]
    same = [r for r in free if refund_key(r.out_trade_no, r.request_no) == row.key]
    # A refund notified without out_biz_no has no request number to match: one of the order's of this amount.
    candidate = same[0] if same else next((r for r in free if not r.request_no and r.amount == amount), None)
    refunded = f"Alipay's bill has a refund of {amount} (request {row.request_no or row.out_trade_no})"
    if candidate is None:
        result.findings.append(Finding(REFUND_MISSING_IN_LEDGER, row.key, row.out_trade_no, row.request_no,
                                       f"{refunded}; the ledger has no such refund", bill=row))
        return
    claimed.add(id(candidate))
    if candidate.amount != amount:
        result.findings.append(Finding(REFUND_AMOUNT_MISMATCH, row.key, row.out_trade_no, row.request_no,
                                       f"{refunded}; the ledger booked {candidate.amount}", bill=row,
                                       ledger=candidate))
    else:
        result.matched.append(row)


def _missing_in_bill(booked: str, day: date, next_bill: bool) -> str:
    if next_bill:
        return f"{booked} on {day}; neither that day's bill nor the next day's has it"
    return f"{booked} on {day}; that day's bill does not have it: carried over to the next day's bill"
