"""Alipay's daily trade bill (交易账单), read strictly: the zip as Alipay gives it, or its detail CSV alone.

Every total the bill states is checked against its rows (the detail's `#交易合计`/`#退款合计` lines, the 汇总
file's `合计` row); a bill that disagrees with itself is refused whole (`BillRefused`), never half-used.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import IO

from ledger.alipay import bill_csv as csv
from ledger.alipay.bill_totals import (
    PAYMENT,
    REFUND,
    BillRow,
    BillTotals,
    Tally,
    check_trailer,
    compare,
    summary_totals,
)
from ledger.domain.errors import BillRefused
from ledger.domain.limits import ID_MAX, SUBJECT_MAX, has_control

__all__ = ["DETAIL_COLUMNS", "MAX_BYTES", "PAYMENT", "REFUND", "SUMMARY_COLUMNS", "BillRow", "BillTotals",
           "TradeBill", "read_bill"]

MAX_BYTES = csv.MAX_BYTES
MAX_RATIO = 100  # uncompressed : compressed, beyond which an entry of over a megabyte is a zip bomb
MAX_ENTRIES = 64
KINDS = {"交易": PAYMENT, "退款": REFUND}
DETAIL_TITLE, SUMMARY_TITLE = "#支付宝业务明细查询", "#支付宝业务汇总查询"
DETAIL_COLUMNS = (
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称", "操作员",
    "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）",
    "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号",
    "服务费（元）", "分润（元）", "备注",
)
DETAIL_REQUIRED = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "商家实收（元）",
                   "服务费（元）", "退款批次号/请求号")
SUMMARY_COLUMNS = (
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）", "支付宝优惠（元）",
    "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）",
)
SUMMARY_REQUIRED = ("交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）", "服务费（元）",
                    "实收净额（元）")
_ZERO = Decimal("0.00")


@dataclass(frozen=True)
class TradeBill:
    account: str  # `#账号：[...]`
    start: datetime  # the period, China Standard Time
    end: datetime
    bill_date: date  # the start's day
    rows: tuple[BillRow, ...]
    totals: BillTotals  # of the rows
    summary: BillTotals | None  # the 汇总 file's 合计 row; None for a detail CSV imported alone


def read_bill(data: bytes) -> TradeBill:
    """The bill in `data`: Alipay's zip (its `…_业务明细.csv` and `…_业务明细(汇总).csv`), or the detail CSV alone."""
    if len(data) > MAX_BYTES:
        raise BillRefused(f"The file is larger than {MAX_BYTES // 2**20} MB; no Alipay trade bill is that large.",
                          reason="too_large")
    if data[:4] != b"PK\x03\x04":
        return _bill(io.BytesIO(data), "the detail file", None)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            detail, summary = _entries(archive)
            with _open(archive, summary) as stream:
                totals, (account, start, end) = _read_summary(stream, _name(summary))
            with _open(archive, detail) as stream:
                bill = _bill(stream, _name(detail), totals)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as error:
        raise BillRefused(f"The zip file is damaged or protected ({error}). Download it again from Alipay.",
                          reason="not_a_bill") from None
    if (bill.account, bill.start, bill.end) != (account, start, end):
        raise BillRefused(f"The summary is for account {account} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
                          f", the detail for account {bill.account} from {bill.start:%Y-%m-%d %H:%M} to "
                          f"{bill.end:%Y-%m-%d %H:%M}: they are not one bill.", reason="totals_differ")
    return bill


def _name(info: zipfile.ZipInfo) -> str:
    """The entry's name: GBK bytes without the UTF-8 flag, which zipfile has read as cp437."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _entries(archive: zipfile.ZipFile) -> tuple[zipfile.ZipInfo, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise BillRefused(f"The zip holds {len(infos)} files; Alipay's trade bill holds two.", reason="not_a_bill")
    names = {info.filename: _name(info) for info in infos}
    details = [info for info in infos if names[info.filename].endswith("_业务明细.csv")]  # in a folder too
    summaries = [info for info in infos
                 if names[info.filename].endswith(("_业务明细(汇总).csv", "_业务明细（汇总）.csv"))]
    for found, what in ((details, "…_业务明细.csv"), (summaries, "…_业务明细(汇总).csv")):
        if len(found) != 1:
            held = ", ".join(list(names.values())[:5]) or "nothing"
            raise BillRefused(f"The zip holds {len(found) or 'no'} {what} where Alipay's trade bill holds one "
                              f"(it holds: {held}).", reason="not_a_bill")
    return details[0], summaries[0]


def _open(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    if info.file_size > MAX_BYTES:
        raise BillRefused(f"{_name(info)} is {info.file_size // 2**20} MB uncompressed, more than the "
                          f"{MAX_BYTES // 2**20} MB any Alipay trade bill is.", reason="too_large")
    if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise BillRefused(f"{_name(info)} is compressed more than {MAX_RATIO} times, as a zip bomb is, not a bill.",
                          reason="too_large")
    return archive.open(info)


def _bill(stream: IO[bytes], name: str, summary: BillTotals | None) -> TradeBill:
    numbered = csv.lines(stream, name=name, title=DETAIL_TITLE)
    account, start, end = csv.preamble(numbered, name=name, title=DETAIL_TITLE, table="业务明细列表")
    tally = Tally()
    rows = tuple(tally.add(row) for row in _rows(numbered, name))
    totals = tally.totals()
    check_trailer(numbered, tally, name=name)
    if summary is not None:
        compare(totals, summary)
    return TradeBill(account, start, end, start.date(), rows, totals, summary)


def _rows(numbered: Iterator[csv.Line], name: str) -> Iterator[BillRow]:
    number, text = next(numbered, (0, ""))
    names = csv.split(text)
    at = csv.header(names, known=DETAIL_COLUMNS, required=DETAIL_REQUIRED, number=number, name=name)
    trade, order, kind_at, refund = (at[c] for c in ("支付宝交易号", "商户订单号", "业务类型", "退款批次号/请求号"))
    subject, created, remark, share = (at.get(c) for c in ("商品名称", "创建时间", "备注", "分润（元）"))
    finished, total, receipt, fee = (at[c] for c in ("完成时间", "订单金额（元）", "商家实收（元）", "服务费（元）"))
    for number, cells in csv.table(numbered, end="业务明细列表结束", width=len(names), name=name):
        kind = KINDS.get(cells[kind_at])
        if kind is None:
            raise BillRefused(f"Line {number} of {name}: 业务类型 is {cells[kind_at][:40]!r}; the ledger knows only "
                              "交易 (a payment) and 退款 (a refund).", reason="bad_row")
        row = BillRow(
            kind=kind,
            trade_no=_identifier(cells[trade], "支付宝交易号", number, name),
            out_trade_no=_identifier(cells[order], "商户订单号", number, name),
            refund_request_no=_identifier(cells[refund], "退款批次号/请求号", number, name, required=False),
            subject=_identifier(cells[subject], "商品名称", number, name, most=SUBJECT_MAX, required=False)
            if subject is not None else "",
            created_at=csv.moment(cells[created], column="创建时间", number=number, name=name)
            if created is not None else None,
            finished_at=csv.moment(cells[finished], column="完成时间", number=number, name=name),
            total_amount=csv.amount(cells[total], column="订单金额（元）", number=number, name=name),
            receipt_amount=csv.amount(cells[receipt], column="商家实收（元）", number=number, name=name),
            # An empty 服务费 or 分润 is no fee: Alipay leaves some blank where it charged nothing.
            fee=csv.amount(cells[fee], column="服务费（元）", number=number, name=name) if cells[fee] else _ZERO,
            share=csv.amount(cells[share], column="分润（元）", number=number, name=name)
            if share is not None and cells[share] else _ZERO,
            remark=cells[remark] if remark is not None else "",
            line=number,
        )
        yield row


def _identifier(text: str, column: str, number: int, name: str, *, most: int = ID_MAX,
                required: bool = True) -> str:
    if (required and not text) or len(text) > most or has_control(text):
        problem = "empty" if not text else f"longer than {most} characters" if len(text) > most else "not text"
        raise BillRefused(f"Line {number} of {name}: {column} is {problem}.", reason="bad_row")
    return text


def _read_summary(stream: IO[bytes], name: str) -> tuple[BillTotals, tuple[str, datetime, datetime]]:
    numbered = csv.lines(stream, name=name, title=SUMMARY_TITLE)
    period = csv.preamble(numbered, name=name, title=SUMMARY_TITLE, table="业务汇总列表")
    number, text = next(numbered, (0, ""))
    cells = csv.split(text)
    at = csv.header(cells, known=SUMMARY_COLUMNS, required=SUMMARY_REQUIRED, number=number, name=name)
    totals = summary_totals(csv.table(numbered, end="业务汇总列表结束", width=len(cells), name=name), at, name)
    for _ in numbered:  # to the end: a zip entry's checksum is verified there
        pass
    return totals, period
