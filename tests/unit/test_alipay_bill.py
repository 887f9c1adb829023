"""Reading Alipay's trade bill: GBK, by header name, every stated total checked, refused whole when it is wrong."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.alipay import bill as bill_module
from ledger.alipay import bill_csv
from ledger.alipay.bill import DETAIL_COLUMNS, DETAIL_REQUIRED, BillRow, BillTotals, read_bill
from ledger.alipay.request import CHINA_STANDARD_TIME as CST
from ledger.alipay.sandbox_bill import (
    ACCOUNT,
    VARIANT_22,
    BillTrade,
    bill_zip,
    detail_csv,
    pack,
    summary_csv,
)
from ledger.domain.errors import BillRefused, Rejected

D = Decimal
PAID_AT = datetime(2019, 9, 16, 10, 30, 5, tzinfo=CST)
FIRST_ROW = 6  # title, account, period, marker, header


def payment(n: int = 1, amount: str = "10.00", fee: str = "0.06", **extra: object) -> BillTrade:
    fields: dict[str, object] = {"fee": D(fee), **extra}
    return BillTrade("payment", f"ORDER-{n}", f"20190916220014{n:014d}", D(amount), PAID_AT, **fields)  # type: ignore[arg-type]


def refund(n: int = 1, amount: str = "4.00", fee: str = "0.02", **extra: object) -> BillTrade:
    fields: dict[str, object] = {"fee": D(fee), "refund_request_no": f"REFUND-{n}", **extra}
    return BillTrade("refund", f"ORDER-{n}", f"20190916220014{n:014d}", D(amount), PAID_AT + timedelta(hours=1),
                     **fields)  # type: ignore[arg-type]


TRADES = [payment(1), payment(2, "25.50", "0.15", share=D("0.10")), refund(1)]


def edit(data: bytes, old: str, new: str) -> bytes:
    text = data.decode("gbk")
    assert old in text
    return text.replace(old, new, 1).encode("gbk")


def refused(data: bytes) -> BillRefused:
    with pytest.raises(BillRefused) as caught:
        read_bill(data)
    return caught.value


# What a bill holds


def test_a_zip_as_alipay_gives_reads_as_its_account_period_rows_and_totals() -> None:
    bill = read_bill(bill_zip(TRADES))
    assert bill.account == ACCOUNT
    assert bill.start == datetime(2019, 9, 16, tzinfo=CST) and bill.end == datetime(2019, 9, 17, tzinfo=CST)
    assert bill.start.utcoffset() == timedelta(hours=8)
    assert bill.bill_date == date(2019, 9, 16)
    assert bill.rows[0] == BillRow("payment", "2019091622001400000000000001", "ORDER-1", "", "测试商品", PAID_AT,
                                   PAID_AT, D("10.00"), D("10.00"), D("-0.06"), D("0.00"), "", FIRST_ROW)
    assert bill.totals == BillTotals(2, 1, D("31.50"), D("31.50"), D("-0.19"), D("-0.10"), D("31.21"))
    assert bill.summary == bill.totals


def test_the_zip_names_its_entries_in_gbk_without_the_utf8_flag_as_alipay_does() -> None:
    infos = zipfile.ZipFile(io.BytesIO(bill_zip(TRADES))).infolist()
    assert all(not info.flag_bits & 0x800 for info in infos)
    assert [info.filename.encode("cp437").decode("gbk") for info in infos] == [
        "20881234567890120156_20190916_业务明细.csv", "20881234567890120156_20190916_业务明细(汇总).csv"]


def test_a_detail_csv_imported_alone_reads_with_no_summary() -> None:
    bill = read_bill(detail_csv(TRADES))
    assert bill.summary is None
    assert bill.totals == read_bill(bill_zip(TRADES)).totals
    assert len(bill.rows) == 3


def test_cells_lose_the_trailing_tabs_alipay_writes() -> None:
    data = detail_csv(TRADES)
    assert "ORDER-1\t,交易\t," in data.decode("gbk")
    row = read_bill(data).rows[0]
    assert (row.out_trade_no, row.trade_no, row.kind) == ("ORDER-1", "2019091622001400000000000001", "payment")


def test_a_refund_is_told_by_its_business_type_and_keeps_the_signs_alipay_writes() -> None:
    row = read_bill(bill_zip(TRADES)).rows[2]
    assert row.kind == "refund"
    assert (row.total_amount, row.receipt_amount, row.fee) == (D("-4.00"), D("-4.00"), D("0.02"))
    assert row.refund_request_no == "REFUND-1" and row.out_trade_no == "ORDER-1"


def test_the_direction_comes_from_the_business_type_not_from_the_sign() -> None:
    # A refund row Alipay wrote with a positive amount is still a refund.
    data = edit(detail_csv([refund(1)]), "-4.00,-4.00", "4.00,4.00").replace("-4.00元".encode("gbk"),
                                                                            "4.00元".encode("gbk"))
    assert read_bill(data).rows[0].kind == "refund"


def test_ascii_parentheses_in_the_headers_read_as_alipays_full_width_ones() -> None:
    assert read_bill(bill_zip(TRADES, ascii_parens=True)).totals == read_bill(bill_zip(TRADES)).totals


def test_the_22_column_bill_reads_with_no_revenue_share() -> None:
    bill = read_bill(bill_zip(TRADES, columns=VARIANT_22, summary_skew={"分润（元）": D("0.10"),
                                                                        "实收净额（元）": D("0.10")}))
    assert len(VARIANT_22) == 22
    assert all(row.share == 0 for row in bill.rows)
    assert bill.totals.share == 0 and bill.totals.net == D("31.31")


def test_columns_are_found_by_name_wherever_they_stand() -> None:
    shuffled = list(reversed(DETAIL_COLUMNS))
    assert read_bill(detail_csv(TRADES, columns=shuffled)).rows == read_bill(detail_csv(TRADES)).rows


def test_only_the_required_columns_are_needed() -> None:
    bill = read_bill(detail_csv(TRADES, columns=DETAIL_REQUIRED))
    row = bill.rows[0]
    assert (row.subject, row.created_at, row.remark, row.share) == ("", None, "", D("0.00"))
    assert row.finished_at == PAID_AT and row.fee == D("-0.06")


def test_the_marker_lines_are_found_by_their_words_whatever_the_count_of_dashes() -> None:
    data = edit(detail_csv(TRADES), "#" + "-" * 41 + "业务明细列表" + "-" * 40, "#---业务明细列表---")
    data = edit(data, "#" + "-" * 41 + "业务明细列表结束" + "-" * 36, "#" + "-" * 60 + "业务明细列表结束" + "-" * 5)
    assert len(read_bill(data).rows) == 3


def test_an_empty_fee_is_no_fee_and_an_empty_finish_time_is_none() -> None:
    data = edit(detail_csv([payment(1, fee="0.00")]), "2019-09-16 10:30:05,2019-09-16 10:30:05,",
                "2019-09-16 10:30:05,,")
    data = edit(data, ",0.00,0.00,\t\r\n", ",,,\t\r\n")  # 服务费 and 分润 blank
    row = read_bill(data).rows[0]
    assert (row.fee, row.share, row.finished_at) == (D("0.00"), D("0.00"), None)


def test_a_bill_without_trades_reads_as_empty() -> None:
    bill = read_bill(bill_zip([]))
    assert bill.rows == () and bill.totals == BillTotals(0, 0, D(0), D(0), D(0), D(0), D(0))


# What is refused, and why


def test_a_refusal_is_a_rejection() -> None:
    assert issubclass(BillRefused, Rejected)


def test_a_header_with_an_unknown_column_is_refused_naming_it() -> None:
    for data in (bill_zip(TRADES, extra_column="银行卡号"), detail_csv(TRADES, extra_column="银行卡号")):
        error = refused(data)
        assert error.reason == "unknown_columns" and "银行卡号" in str(error)


def test_a_header_with_a_column_twice_is_refused() -> None:
    error = refused(detail_csv(TRADES, columns=[*DETAIL_COLUMNS, "备注"]))
    assert error.reason == "unknown_columns" and "备注" in str(error)


@pytest.mark.parametrize("column", DETAIL_REQUIRED)
def test_a_header_without_a_required_column_is_refused_naming_it(column: str) -> None:
    error = refused(detail_csv(TRADES, columns=[c for c in DETAIL_COLUMNS if c != column]))
    assert error.reason == "missing_columns" and column in str(error)


def test_a_row_of_an_unknown_business_type_is_refused_naming_it_and_its_line() -> None:
    error = refused(bill_zip([payment(1), payment(2, business_type="冻结")]))
    assert error.reason == "bad_row" and "冻结" in str(error) and f"Line {FIRST_ROW + 1}" in str(error)


@pytest.mark.parametrize("written", ["1,00", "10.001", "ten", "１0.00", "1e1", "+10.00", "", "10.", "--10.00"])
def test_a_malformed_amount_is_refused_naming_its_line_and_column(written: str) -> None:
    error = refused(edit(detail_csv([payment(1)]), "0000\t,10.00,", f"0000\t,{written},"))
    assert error.reason == "bad_row"
    assert f"Line {FIRST_ROW}" in str(error) and ("订单金额（元）" in str(error) or "cells" in str(error))


def test_a_malformed_time_is_refused_naming_its_line_and_column() -> None:
    error = refused(edit(detail_csv([payment(1)]), ",2019-09-16 10:30:05,\t", ",2019-09-16 25:30:05,\t"))
    assert error.reason == "bad_row" and "完成时间" in str(error) and f"Line {FIRST_ROW}" in str(error)


def test_a_row_with_a_cell_too_few_is_refused_naming_its_line() -> None:
    error = refused(edit(detail_csv([payment(1)]), "ORDER-1\t,", ""))
    assert error.reason == "bad_row" and f"Line {FIRST_ROW}" in str(error)


def test_a_row_without_a_trade_number_is_refused() -> None:
    error = refused(edit(detail_csv([payment(1)]), "2019091622001400000000000001\t", "\t"))
    assert error.reason == "bad_row" and "支付宝交易号" in str(error)


def test_a_bill_saved_again_as_utf8_is_refused_as_not_gbk() -> None:
    for data in (detail_csv(TRADES, encoding="utf-8"), bill_zip(TRADES, encoding="utf-8"),
                 b"\xef\xbb\xbf" + detail_csv(TRADES, encoding="utf-8")):
        error = refused(data)
        assert error.reason == "not_gbk" and "UTF-8" in str(error)


def test_bytes_that_are_not_gbk_are_refused_naming_their_line() -> None:
    data = detail_csv(TRADES).replace("测试商品".encode("gbk"), b"\xff\xfe\xfd\xfc", 1)
    error = refused(data)
    assert error.reason == "not_gbk" and f"Line {FIRST_ROW}" in str(error)


@pytest.mark.parametrize(("column", "label"), [
    ("交易订单总笔数", "交易订单总笔数"), ("退款订单总笔数", "退款订单总笔数"), ("订单金额（元）", "订单金额（元）"),
    ("商家实收（元）", "商家实收（元）"), ("服务费（元）", "服务费（元）"), ("分润（元）", "分润（元）"),
    ("实收净额（元）", "实收净额（元）"),
])
def test_a_summary_that_disagrees_with_the_detail_refuses_the_bill_saying_what_differs(column: str,
                                                                                       label: str) -> None:
    error = refused(bill_zip(TRADES, summary_skew={column: D("1")}))
    assert error.reason == "totals_differ"
    assert label in str(error) and "a difference of -1" in str(error)


def test_every_total_that_differs_is_named() -> None:
    error = refused(bill_zip(TRADES, summary_skew={"服务费（元）": D("0.01"), "实收净额（元）": D("0.01")}))
    assert "服务费（元） is -0.19 in the detail but -0.18" in str(error) and "实收净额（元）" in str(error)


@pytest.mark.parametrize(("old", "new", "named"), [
    ("#交易合计：2笔", "#交易合计：3笔", "#交易合计 says 3 payments but the detail lists 2"),
    ("商家实收共35.50元", "商家实收共35.49元", "#交易合计 says 商家实收 35.49"),
    ("#退款合计：1笔", "#退款合计：0笔", "#退款合计 says 0 refunds"),
    ("商家实收退款共-4.00元", "商家实收退款共-4.01元", "a difference of 0.01"),
])
def test_a_detail_whose_own_totals_disagree_with_its_rows_is_refused(old: str, new: str, named: str) -> None:
    for data in (edit(detail_csv(TRADES), old, new), pack(edit(detail_csv(TRADES), old, new), summary_csv(TRADES))):
        error = refused(data)
        assert error.reason == "totals_differ" and named in str(error)


@pytest.mark.parametrize("cut", ["#退款合计", "#交易合计", "#---"])
def test_a_bill_cut_short_is_refused(cut: str) -> None:
    text = detail_csv(TRADES).decode("gbk")
    data = text[: text.index(cut, text.index("业务明细列表结束") - 60)].encode("gbk")
    error = refused(data)
    assert error.reason == "not_a_bill" and "cut short" in str(error)


def test_a_summary_of_another_account_or_day_is_refused() -> None:
    for summary in (summary_csv(TRADES, account="20889999999999990156"), summary_csv(TRADES, day=date(2019, 9, 17))):
        error = refused(pack(detail_csv(TRADES), summary))
        assert error.reason == "totals_differ" and "not one bill" in str(error)


def test_a_summary_without_its_total_row_is_refused() -> None:
    error = refused(pack(detail_csv(TRADES), edit(summary_csv(TRADES), "合计\t", "\t")))
    assert error.reason == "not_a_bill" and "合计" in str(error)


@pytest.mark.parametrize("data", [b"", b"hello", "#支付宝业务汇总查询\r\n".encode("gbk"), b"%PDF-1.4\n",
                                  "#支付宝业务明细查询\r\n#账号：[1]\r\n".encode("gbk")])
def test_a_file_that_is_not_a_bill_is_refused_as_such(data: bytes) -> None:
    assert refused(data).reason == "not_a_bill"


def test_a_zip_without_the_bill_entries_is_refused_saying_what_it_holds() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    error = refused(buffer.getvalue())
    assert error.reason == "not_a_bill" and "xl/workbook.xml" in str(error)


def test_a_damaged_zip_is_refused() -> None:
    data = bytearray(bill_zip(TRADES))
    data[60:80] = b"\x00" * 20
    assert refused(bytes(data)).reason == "not_a_bill"
    assert refused(bytes(data[:100])).reason == "not_a_bill"


def test_a_zip_bomb_is_refused_before_it_is_read() -> None:
    detail = detail_csv(TRADES) + b"#" * (4 * 2**20)  # a few megabytes compressing a thousandfold
    error = refused(pack(detail, summary_csv(TRADES)))
    assert error.reason == "too_large" and "zip bomb" in str(error)


def test_a_file_or_entry_larger_than_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    trades = [payment(n) for n in range(10)]
    monkeypatch.setattr(bill_module, "MAX_BYTES", len(bill_zip(trades)))  # the zip fits, its detail does not
    assert refused(detail_csv(trades)).reason == "too_large"
    error = refused(bill_zip(trades))
    assert error.reason == "too_large" and "业务明细.csv" in str(error)


def test_lines_beyond_the_cap_are_refused_as_they_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bill_csv, "MAX_BYTES", 1000)  # the streamed count, whatever the zip declares
    assert refused(bill_zip([payment(n) for n in range(10)])).reason == "too_large"


def test_a_line_without_end_is_refused() -> None:
    assert refused(detail_csv(TRADES) + b"x" * (bill_csv.MAX_LINE + 1)).reason == "not_a_bill"


# Any bill Alipay would write reads back as exactly its trades


CENTS = st.integers(1, 10**10).map(lambda c: D(c) / 100)
WORDS = st.text(st.sampled_from("测试商品订单会员充值ABCabc0123-_（）() "), max_size=20).map(str.strip)
IDS = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"), min_size=1,
              max_size=64)


@st.composite
def bill_trades(draw: st.DrawFn) -> BillTrade:
    amount = draw(CENTS)
    finished = datetime(2019, 9, 16, tzinfo=CST) + timedelta(seconds=draw(st.integers(0, 86399)))
    return BillTrade(
        kind=draw(st.sampled_from(["payment", "refund"])), out_trade_no=draw(IDS),
        trade_no=draw(st.text(st.sampled_from("0123456789"), min_size=28, max_size=32)), amount=amount,
        finished_at=finished, created_at=finished - timedelta(seconds=draw(st.integers(0, 3600))),
        fee=draw(st.integers(0, 600).map(lambda c: D(c) / 100)),
        share=draw(st.integers(0, 100).map(lambda c: D(c) / 100)),
        receipt_amount=draw(st.none() | st.integers(0, int(amount * 100)).map(lambda c: D(c) / 100)),
        refund_request_no=draw(st.just("") | IDS), subject=draw(WORDS), remark=draw(WORDS))


def expected(trades: Sequence[BillTrade], *, shares: bool) -> tuple[tuple[BillRow, ...], BillTotals]:
    rows = []
    for i, t in enumerate(trades):
        sign = 1 if t.kind == "payment" else -1
        receipt = t.amount if t.receipt_amount is None else t.receipt_amount
        rows.append(BillRow(t.kind, t.trade_no, t.out_trade_no, t.refund_request_no, t.subject, t.created_at,
                            t.finished_at, sign * t.amount, sign * receipt, -sign * t.fee,
                            -sign * t.share if shares else D("0.00"), t.remark, FIRST_ROW + i))
    receipt = sum((r.receipt_amount for r in rows), D("0.00"))
    fee, share = sum((r.fee for r in rows), D("0.00")), sum((r.share for r in rows), D("0.00"))
    return tuple(rows), BillTotals(sum(r.kind == "payment" for r in rows), sum(r.kind == "refund" for r in rows),
                                   sum((r.total_amount for r in rows), D("0.00")), receipt, fee, share,
                                   receipt + fee + share)


@settings(max_examples=60, deadline=None)
@given(st.lists(bill_trades(), max_size=12), st.booleans(), st.booleans(), st.booleans())
def test_any_set_of_trades_reads_back_as_exactly_those_rows_and_totals(trades: list[BillTrade], zipped: bool,
                                                                      ascii_parens: bool, older: bool) -> None:
    columns = VARIANT_22 if older else DETAIL_COLUMNS
    if older:  # that bill has no 分润 column, and its summary none either
        trades = [BillTrade(**{**t.__dict__, "share": D("0.00")}) for t in trades]
    data = (bill_zip(trades, columns=columns, ascii_parens=ascii_parens) if zipped
            else detail_csv(trades, columns=columns, ascii_parens=ascii_parens))
    bill = read_bill(data)
    rows, totals = expected(trades, shares=not older)
    assert bill.rows == rows
    assert bill.totals == totals
    assert bill.summary == (totals if zipped else None)


# Bounded work


def test_a_bill_of_100000_rows_is_read_holding_little_more_than_its_rows() -> None:
    trades = [payment(n, f"{n % 1000 + 1}.{n % 100:02d}", f"{n % 7}.0{n % 10}") if n % 10 else refund(n)
              for n in range(100_000)]
    data = bill_zip(trades)
    del trades
    tracemalloc.start()
    try:
        bill = read_bill(data)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(bill.rows) == 100_000 and bill.totals == bill.summary
    # The rows are the memory the reader keeps; reading them costs a little more, never a copy of the file.
    assert peak < retained * 1.1 + 8 * 2**20
    assert retained < 100_000 * 1200
