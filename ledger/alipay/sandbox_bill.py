"""Act exactly like Alipay: the daily trade bill of a list of trades, as the zip it gives or its detail CSV alone.

Used by the tests (and the benchmark); never on the path of a real bill. The fee follows the reference's fake:
服务费 and 分润 negative on a payment, positive on a refund, 实收净额 = 商家实收 + 服务费 + 分润. Options make the
known variants (22 columns, ASCII parentheses) and the faults a reader must refuse.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from ledger.alipay.bill import DETAIL_COLUMNS, DETAIL_TITLE, PAYMENT, SUMMARY_COLUMNS, SUMMARY_TITLE
from ledger.alipay.request import CHINA_STANDARD_TIME

PID = "2088123456789012"
ACCOUNT = PID + "0156"
DAY = date(2019, 9, 16)
# The older 22-column detail: without the merchant's red packets, card spending and revenue share.
VARIANT_22 = tuple(c for c in DETAIL_COLUMNS if c not in {"商家红包消费金额（元）", "卡消费金额（元）", "分润（元）"})
# Cells Alipay writes with a trailing tab, so that a spreadsheet keeps long numbers as text.
_TABBED = {"支付宝交易号", "商户订单号", "业务类型", "商品名称", "门店编号", "门店名称", "操作员", "终端号", "对方账户",
           "券名称", "退款批次号/请求号", "备注"}
_ZERO = Decimal("0.00")
_ZERO_CELLS = {c: "0.00" for c in DETAIL_COLUMNS if c.endswith("（元）")}  # the amounts no trade here has
_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class BillTrade:
    """A payment or a refund as the bill shows it; amounts are magnitudes (the bill gives them their signs)."""

    kind: str  # "payment" or "refund"
    out_trade_no: str
    trade_no: str
    amount: Decimal  # 订单金额: the payment's, or the refund's
    finished_at: datetime  # China Standard Time
    created_at: datetime | None = None  # finished_at when None
    fee: Decimal = _ZERO  # 服务费 Alipay keeps (on a payment) or returns (on a refund)
    share: Decimal = _ZERO  # 分润
    receipt_amount: Decimal | None = None  # 商家实收 when not the whole amount (a discount)
    refund_request_no: str = ""
    subject: str = "测试商品"
    remark: str = ""
    business_type: str = ""  # written as 业务类型 instead of 交易/退款: a fault for tests

    def signed(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(订单金额, 商家实收, 服务费, 分润) with the signs the bill writes."""
        receipt = self.amount if self.receipt_amount is None else self.receipt_amount
        sign = 1 if self.kind == PAYMENT else -1
        return sign * self.amount, sign * receipt, -sign * self.fee, -sign * self.share


def detail_csv(trades: Sequence[BillTrade], *, account: str = ACCOUNT, day: date = DAY,
               columns: Sequence[str] = DETAIL_COLUMNS, ascii_parens: bool = False, extra_column: str = "",
               encoding: str = "gbk") -> bytes:
    """The detail file (业务明细): `columns` (VARIANT_22 for the older bill), `extra_column` a column no bill has."""
    header = [*columns, extra_column] if extra_column else list(columns)
    lines = [DETAIL_TITLE, *_period(account, day), "#" + "-" * 41 + "业务明细列表" + "-" * 40,
             ",".join(_paren(c, ascii_parens) for c in header)]
    counts, receipts = {PAYMENT: 0, "refund": 0}, {PAYMENT: _ZERO, "refund": _ZERO}
    for trade in trades:
        cells = _detail_cells(trade)
        lines.append(",".join(cells.get(c, "") + ("\t" if c in _TABBED else "") for c in header))
        counts[trade.kind] += 1
        receipts[trade.kind] += trade.signed()[1]
    lines += ["#" + "-" * 41 + "业务明细列表结束" + "-" * 36,
              f"#交易合计：{counts[PAYMENT]}笔，商家实收共{_yuan(receipts[PAYMENT])}元，商家优惠共0.00元",
              f"#退款合计：{counts['refund']}笔，商家实收退款共{_yuan(receipts['refund'])}元，商家优惠退款共0.00元",
              _exported(day)]
    return _text(lines, encoding)


def summary_csv(trades: Sequence[BillTrade], *, account: str = ACCOUNT, day: date = DAY,
                ascii_parens: bool = False, skew: Mapping[str, Decimal] | None = None,
                encoding: str = "gbk") -> bytes:
    """The summary file (业务明细(汇总)): one row for the store, then 合计; `skew` adds to 合计's cells by column
    name, making a summary that disagrees with its detail."""
    counts = [sum(t.kind == PAYMENT for t in trades), sum(t.kind != PAYMENT for t in trades)]
    signed = [t.signed() for t in trades]
    sums = [sum((amounts[i] for amounts in signed), _ZERO) for i in range(4)]
    values: dict[str, Decimal] = {
        "交易订单总笔数": Decimal(counts[0]), "退款订单总笔数": Decimal(counts[1]), "订单金额（元）": sums[0],
        "商家实收（元）": sums[1], "服务费（元）": sums[2], "分润（元）": sums[3],
        "实收净额（元）": sums[1] + sums[2] + sums[3]}

    def row(store: str, name: str, shift: Mapping[str, Decimal]) -> str:
        cells = {c: (f"{values.get(c, _ZERO) + shift.get(c, _ZERO):.0f}" if "笔数" in c
                     else _yuan(values.get(c, _ZERO) + shift.get(c, _ZERO))) for c in SUMMARY_COLUMNS[2:]}
        return ",".join([store + "\t", name + "\t", *cells.values()])

    lines = [SUMMARY_TITLE, *_period(account, day), "#" + "-" * 41 + "业务汇总列表" + "-" * 40,
             ",".join(_paren(c, ascii_parens) for c in SUMMARY_COLUMNS), row("", "", {}), row("合计", "", skew or {}),
             "#" + "-" * 40 + "业务汇总列表结束" + "-" * 37, _exported(day)]
    return _text(lines, encoding)


def bill_zip(trades: Sequence[BillTrade], *, pid: str = PID, account: str = ACCOUNT, day: date = DAY,
             summary_skew: Mapping[str, Decimal] | None = None, columns: Sequence[str] = DETAIL_COLUMNS,
             ascii_parens: bool = False, extra_column: str = "", encoding: str = "gbk") -> bytes:
    """The zip Alipay gives: `<pid>0156_<yyyyMMdd>_业务明细.csv` and `…_业务明细(汇总).csv`, names in GBK without
    the UTF-8 flag."""
    detail = detail_csv(trades, account=account, day=day, columns=columns, ascii_parens=ascii_parens,
                        extra_column=extra_column, encoding=encoding)
    summary = summary_csv(trades, account=account, day=day, ascii_parens=ascii_parens, skew=summary_skew,
                          encoding=encoding)
    return pack(detail, summary, pid=pid, day=day)


def pack(detail: bytes, summary: bytes, *, pid: str = PID, day: date = DAY) -> bytes:
    """A detail and a summary file zipped as Alipay zips them (for tests that change a file before zipping it)."""
    stem = f"{pid}0156_{day:%Y%m%d}_业务明细"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in ((stem + ".csv", detail), (stem + "(汇总).csv", summary)):
            archive.writestr(_GbkName(name, date_time=(day.year, day.month, day.day, 9, 0, 0)), content,
                             zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


class _GbkName(zipfile.ZipInfo):
    """An entry whose name is written in GBK without the UTF-8 flag, as Alipay's are (zipfile would write UTF-8)."""

    __slots__ = ("_gbk",)

    def __init__(self, name: str, date_time: tuple[int, int, int, int, int, int]) -> None:
        super().__init__(name.encode("gbk").decode("cp437"), date_time)
        self._gbk = name.encode("gbk")

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802  (zipfile's name)
        return self._gbk, self.flag_bits & ~0x800


def _detail_cells(trade: BillTrade) -> dict[str, str]:
    total, receipt, fee, share = trade.signed()
    created = trade.created_at or trade.finished_at
    cells = dict(_ZERO_CELLS)
    cells.update({
        "支付宝交易号": trade.trade_no, "商户订单号": trade.out_trade_no,
        "业务类型": trade.business_type or ("交易" if trade.kind == PAYMENT else "退款"),
        "商品名称": trade.subject, "创建时间": created.astimezone(CHINA_STANDARD_TIME).strftime(_TIME),
        "完成时间": trade.finished_at.astimezone(CHINA_STANDARD_TIME).strftime(_TIME), "门店编号": "",
        "门店名称": "", "操作员": "", "终端号": "", "对方账户": "138****0000", "订单金额（元）": _yuan(total),
        "商家实收（元）": _yuan(receipt), "券名称": "", "退款批次号/请求号": trade.refund_request_no,
        "服务费（元）": _yuan(fee), "分润（元）": _yuan(share), "备注": trade.remark})
    return cells


def _period(account: str, day: date) -> list[str]:
    start = datetime.combine(day, time())
    end = start + timedelta(days=1)
    stamp = "%Y年%m月%d日 %H:%M:%S"
    return [f"#账号：[{account}]", f"#起始日期：[{start:{stamp}}]   终止日期：[{end:{stamp}}]"]


def _exported(day: date) -> str:
    return f"#导出时间：[{datetime.combine(day + timedelta(days=1), time(9)):%Y年%m月%d日 %H:%M:%S}]"


def _paren(column: str, ascii_parens: bool) -> str:
    return column.replace("（", "(").replace("）", ")") if ascii_parens else column


def _yuan(amount: Decimal) -> str:
    return f"{amount if amount else _ZERO:.2f}"  # never "-0.00"


def _text(lines: list[str], encoding: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode(encoding)
