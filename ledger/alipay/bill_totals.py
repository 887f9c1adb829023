"""A trade bill's rows and totals, and the checks that its stated totals are the sums of its rows.

Sums are compared exactly as the file states them, signs included: 服务费's sign is not settled between Alipay's
own samples, so nothing here infers a direction from it (业务类型 says which rows are payments and refunds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ledger.alipay import bill_csv as csv
from ledger.domain.errors import BillRefused

PAYMENT, REFUND = "payment", "refund"
_ZERO = Decimal("0.00")
_PAYMENTS = re.compile(r"#交易合计[：:]\s*(?P<count>[0-9]+)笔[，,]\s*商家实收共(?P<receipt>[-0-9.]+)元")
_REFUNDS = re.compile(r"#退款合计[：:]\s*(?P<count>[0-9]+)笔[，,]\s*商家实收退款共(?P<receipt>[-0-9.]+)元")


@dataclass(frozen=True, slots=True)
class BillRow:
    """One row of the detail: a payment (交易) or a refund (退款: negative 订单金额 and 商家实收), amounts as
    written."""

    kind: str  # PAYMENT or REFUND
    trade_no: str  # 支付宝交易号
    out_trade_no: str  # 商户订单号
    refund_request_no: str  # 退款批次号/请求号, "" when the row has none
    subject: str  # 商品名称
    created_at: datetime | None  # China Standard Time
    finished_at: datetime | None
    total_amount: Decimal  # 订单金额（元）
    receipt_amount: Decimal  # 商家实收（元）
    fee: Decimal  # 服务费（元）
    share: Decimal  # 分润（元）, 0.00 when the bill has no such column
    remark: str  # 备注
    line: int  # in the detail file


@dataclass(frozen=True)
class BillTotals:
    """Counts and sums of a bill (the detail's rows, or the 汇总 file's 合计 row); `net` is 实收净额."""

    payments: int
    refunds: int
    total_amount: Decimal  # 订单金额（元）
    receipt_amount: Decimal  # 商家实收（元）
    fee: Decimal  # 服务费（元）
    share: Decimal  # 分润（元）
    net: Decimal  # 实收净额（元） = 商家实收 + 服务费 + 分润


# What each total is called in the bill, for the messages.
LABELS = {"payments": "交易订单总笔数 (payments)", "refunds": "退款订单总笔数 (refunds)",
          "total_amount": "订单金额（元）", "receipt_amount": "商家实收（元）", "fee": "服务费（元）",
          "share": "分润（元）", "net": "实收净额（元）"}


class Tally:
    """The running totals of the detail's rows, kept as they stream past (the rows are not summed twice)."""

    def __init__(self) -> None:
        self.counts = {PAYMENT: 0, REFUND: 0}
        self.receipts = {PAYMENT: _ZERO, REFUND: _ZERO}
        self.total = self.fee = self.share = _ZERO

    def add(self, row: BillRow) -> BillRow:
        self.counts[row.kind] += 1
        self.receipts[row.kind] += row.receipt_amount
        self.total += row.total_amount
        self.fee += row.fee
        self.share += row.share
        return row

    def totals(self) -> BillTotals:
        receipt = self.receipts[PAYMENT] + self.receipts[REFUND]
        return BillTotals(self.counts[PAYMENT], self.counts[REFUND], self.total, receipt, self.fee, self.share,
                          receipt + self.fee + self.share)


def check_trailer(numbered: Iterator[csv.Line], tally: Tally, *, name: str) -> None:
    """The `#交易合计` and `#退款合计` lines after the table: their counts and 商家实收 those of the rows."""
    stated: dict[str, tuple[int, Decimal]] = {}
    for number, text in numbered:  # to the end of the file: a zip entry's checksum is verified there
        for kind, pattern, line in ((PAYMENT, _PAYMENTS, "#交易合计"), (REFUND, _REFUNDS, "#退款合计")):
            if found := pattern.match(text.strip()):
                receipt = csv.amount(found["receipt"], column=line, number=number, name=name)
                stated[kind] = int(found["count"]), receipt
    differences = []
    for kind, line, what in ((PAYMENT, "#交易合计", "payments"), (REFUND, "#退款合计", "refunds")):
        if kind not in stated:
            raise BillRefused(f"{name} ends without its {line} line: the file is cut short. Download it again.",
                              reason="not_a_bill")
        stated_count, stated_receipt = stated[kind]
        if stated_count != tally.counts[kind]:
            differences.append(f"{line} says {stated_count} {what} but the detail lists {tally.counts[kind]} "
                               f"(a difference of {tally.counts[kind] - stated_count})")
        if stated_receipt != tally.receipts[kind]:
            differences.append(f"{line} says 商家实收 {stated_receipt} but the {what} in the detail add up to "
                               f"{tally.receipts[kind]} (a difference of {tally.receipts[kind] - stated_receipt})")
    if differences:
        raise BillRefused(f"The bill disagrees with itself, so none of it was used: {'; '.join(differences)}.",
                          reason="totals_differ")


def compare(detail: BillTotals, summary: BillTotals) -> None:
    """The detail's totals those of the 汇总 file's 合计 row, each of them; refused naming every one that differs."""
    differences = []
    for field, label in LABELS.items():
        ours, theirs = getattr(detail, field), getattr(summary, field)
        if ours != theirs:
            differences.append(f"{label} is {ours} in the detail but {theirs} in the summary (合计), a difference "
                               f"of {ours - theirs}")
    if differences:
        raise BillRefused(f"The detail and the summary (汇总) of the bill disagree, so none of it was used: "
                          f"{'; '.join(differences)}.", reason="totals_differ")


def summary_totals(rows: Iterable[tuple[int, list[str]]], at: dict[str, int], name: str) -> BillTotals:
    """The 合计 row of the 汇总 table (one row per store, then 合计), as BillTotals."""
    store = [at[c] for c in ("门店编号", "门店名称") if c in at] or [0]
    found: BillTotals | None = None
    for number, cells in rows:
        if "合计" not in (cells[i] for i in store):
            continue
        if found is not None:
            raise BillRefused(f"{name} has a second 合计 row (line {number}).", reason="not_a_bill")

        def value(column: str, number: int = number, cells: list[str] = cells) -> Decimal:
            if column not in at:
                return _ZERO
            return csv.amount(cells[at[column]], column=column, number=number, name=name)

        found = BillTotals(
            csv.count(cells[at["交易订单总笔数"]], column="交易订单总笔数", number=number, name=name),
            csv.count(cells[at["退款订单总笔数"]], column="退款订单总笔数", number=number, name=name),
            value("订单金额（元）"), value("商家实收（元）"), value("服务费（元）"), value("分润（元）"),
            value("实收净额（元）"))
    if found is None:
        raise BillRefused(f"{name} has no 合计 row: it is not a complete Alipay trade bill.", reason="not_a_bill")
    return found
