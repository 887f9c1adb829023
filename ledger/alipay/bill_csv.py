"""The lines of one CSV file of Alipay's trade bill: GBK text streamed line by line, the `#` lines around the
table, the table itself mapped by header name. Pure; `ledger.alipay.bill` puts the files together."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import IO

from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.domain.errors import BillRefused, InvalidRequest
from ledger.domain.limits import parse_time

MAX_BYTES = 200 * 1024 * 1024  # of one file, uncompressed: a day of a large merchant is far below
MAX_LINE = 64 * 1024  # of one line: a row of 25 cells is under 1 KiB
Line = tuple[int, str]

_MARKER = re.compile(r"#-{3,}\s*(?P<words>[^-\s]+)\s*-{3,}")
_ACCOUNT = re.compile(r"#账号[：:]\s*\[(?P<account>[^\]]*)\]")
_PERIOD = re.compile(r"#起始日期[：:]\s*\[(?P<start>[^\]]*)\]\s*终止日期[：:]\s*\[(?P<end>[^\]]*)\]")
_BILL_TIME = "%Y年%m月%d日 %H:%M:%S"
# Signed yuan with at most two decimals, ASCII digits only (\d would take full-width ones); 12 digits for totals.
_AMOUNT = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,2})?")
_CENT = Decimal("0.01")


def lines(stream: IO[bytes], *, name: str, title: str) -> Iterator[Line]:
    """Numbered lines of `stream` as text, decoded from GBK one by one (never the whole file at once), without
    their line ends. A line feed is never part of a GBK character, so splitting the bytes on it is safe."""
    number = size = 0
    while chunk := stream.readline(MAX_LINE + 1):
        number += 1
        size += len(chunk)
        if size > MAX_BYTES:
            raise BillRefused(f"{name} is larger than {MAX_BYTES // 2**20} MB; no Alipay trade bill is that "
                              "large, so it was not read.", reason="too_large")
        if len(chunk) > MAX_LINE:
            raise BillRefused(f"Line {number} of {name} is longer than {MAX_LINE // 1024} KB: this is not an "
                              "Alipay trade bill.", reason="not_a_bill")
        try:
            text = chunk.decode("gbk")
        except UnicodeDecodeError:
            raise _not_gbk(chunk, number, name, title) from None
        yield number, text.rstrip("\r\n")


def _is_utf8_title(chunk: bytes, title: str) -> bool:
    try:
        return chunk.decode("utf-8-sig").startswith(title)
    except UnicodeDecodeError:
        return False


def _not_gbk(chunk: bytes, number: int, name: str, title: str) -> BillRefused:
    if number == 1 and _is_utf8_title(chunk, title):
        return BillRefused(f"{name} is UTF-8 text, but Alipay writes its bills in GBK: it was probably opened "
                           "and saved again by another program. Import the file exactly as downloaded from "
                           "Alipay.", reason="not_gbk")
    return BillRefused(f"Line {number} of {name} is not GBK text, the encoding Alipay writes its bills in. "
                       "Import the file exactly as downloaded from Alipay.", reason="not_gbk")


def preamble(numbered: Iterator[Line], *, name: str, title: str, table: str) -> tuple[str, datetime, datetime]:
    """The title, `#账号：[...]` and `#起始日期：[...] 终止日期：[...]` before the table's start marker, read up to
    that marker: (account, start, end), times in China Standard Time."""
    first = next(numbered, None)
    if first is None or not first[1].strip().startswith(title):
        raise BillRefused(f"{name} does not begin with {title}: it is not an Alipay trade bill.",
                          reason="not_a_bill")
    account: str | None = None
    period: tuple[datetime, datetime] | None = None
    for number, text in numbered:
        text = text.strip()
        if marker(text) == table:
            if account is None or period is None:
                missing = "#账号" if account is None else "#起始日期"
                raise BillRefused(f"{name} has no {missing} line before its table (line {number}): it is not a "
                                  "complete Alipay trade bill.", reason="not_a_bill")
            return account, *period
        if found := _ACCOUNT.fullmatch(text):
            account = found["account"].strip()
        elif found := _PERIOD.fullmatch(text):
            period = _bill_time(found["start"], number, name), _bill_time(found["end"], number, name)
    raise BillRefused(f"{name} has no table (no #---{table}--- line): it is not an Alipay trade bill.",
                      reason="not_a_bill")


def _bill_time(text: str, number: int, name: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), _BILL_TIME).replace(tzinfo=CHINA_STANDARD_TIME)
    except ValueError:
        raise BillRefused(f"Line {number} of {name} gives the period as {text!r}, not a time such as "
                          "2019年09月16日 00:00:00.", reason="not_a_bill") from None


def marker(text: str) -> str | None:
    """The words of a marker line (`#-----业务明细列表-----`), matched by its words whatever the count of dashes."""
    found = _MARKER.fullmatch(text)
    return found["words"] if found else None


def split(text: str) -> list[str]:
    """The cells of a table line, each without its trailing tab and surrounding whitespace."""
    cells = next(csv.reader([text])) if '"' in text else text.split(",")
    return [cell.strip() for cell in cells]


def header(cells: Sequence[str], *, known: Sequence[str], required: Sequence[str], number: int,
           name: str) -> dict[str, int]:
    """Each column's position by its name (ASCII parentheses read as Alipay's full-width ones); refused if a name
    is unknown, appears twice, or a required one is missing."""
    names = [cell.replace("(", "（").replace(")", "）") for cell in cells]
    while names and not names[-1]:
        names.pop()  # a trailing comma: its rows have one too, and the cells under it are not read
    unknown = [cells[i] or "(a column without a name)" for i, column in enumerate(names) if column not in known]
    if unknown:
        raise BillRefused(f"The header of {name} (line {number}) has columns this ledger does not know: "
                          f"{', '.join(unknown)}. The bill was not used; tell the ledger's maintainers which "
                          "kind of Alipay bill this is.", reason="unknown_columns")
    twice = sorted({column for column in names if names.count(column) > 1})
    if twice:
        raise BillRefused(f"The header of {name} (line {number}) has the column {', '.join(twice)} more than once.",
                          reason="unknown_columns")
    missing = [column for column in required if column not in names]
    if missing:
        raise BillRefused(f"The header of {name} (line {number}) lacks the columns {', '.join(missing)}, without "
                          "which the bill cannot be reconciled.", reason="missing_columns")
    return {column: i for i, column in enumerate(names)}


def table(numbered: Iterator[Line], *, end: str, width: int, name: str) -> Iterator[tuple[int, list[str]]]:
    """The table's rows as cells, up to its end marker; refused if the file ends before it (cut short)."""
    for number, text in numbered:
        if text.startswith("#") and marker(text.strip()) == end:
            return
        cells = split(text)
        if len(cells) != width:
            raise BillRefused(f"Line {number} of {name} has {len(cells)} cells where its header has {width}.",
                              reason="bad_row")
        yield number, cells
    raise BillRefused(f"{name} ends before its #---{end}--- line: the file is cut short. Download it again.",
                      reason="not_a_bill")


def amount(text: str, *, column: str, number: int, name: str) -> Decimal:
    """A signed amount in yuan as Alipay writes it (`-0.04`), strictly; refused naming the line and column."""
    try:
        return _amount(text)
    except ValueError:
        raise BillRefused(f"Line {number} of {name}: {column} is {text[:40]!r}, not an amount in yuan such as "
                          "12.30 or -12.30.", reason="bad_row") from None


@lru_cache(maxsize=4096)  # the same few amounts recur: one Decimal each, shared by the rows
def _amount(text: str) -> Decimal:
    if not _AMOUNT.fullmatch(text):
        raise ValueError(text)
    return Decimal(text).quantize(_CENT)


def count(text: str, *, column: str, number: int, name: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BillRefused(f"Line {number} of {name}: {column} is {text[:40]!r}, not a number of orders.",
                          reason="bad_row")
    return int(text)


def moment(text: str, *, column: str, number: int, name: str) -> datetime | None:
    """`yyyy-MM-dd HH:mm:ss` in China Standard Time; None for an empty cell."""
    if not text:
        return None
    try:
        return parse_time(text, field=column).replace(tzinfo=CHINA_STANDARD_TIME)
    except InvalidRequest:
        raise BillRefused(f"Line {number} of {name}: {column} is {text[:40]!r}, not a time such as "
                          "2019-09-16 10:00:00.", reason="bad_row") from None
