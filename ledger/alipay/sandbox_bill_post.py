"""The body of the stand-in gateway's `POST /sandbox/bills` read strictly into a day and its BillTrades, numbered as
the sandbox numbers its trades (`trade_number`), so that the bill lists the trades its notifications announced."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from ledger.alipay.bill import PAYMENT, REFUND
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox import trade_number
from ledger.alipay.sandbox_bill import BillTrade

FIELDS = frozenset({"bill_date", "trades"})
TRADE_FIELDS = frozenset({"kind", "out_trade_no", "amount", "fee", "share", "receipt_amount", "refund_request_no",
                          "finished_at"})
NOON = time(12)  # when a trade finished if the body does not say
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_YUAN = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
_CENT = Decimal("0.01")


def bill_trades(body: object, today: date) -> tuple[date, list[BillTrade]]:
    """(the bill's day, its trades) from `{"bill_date": "YYYY-MM-DD", "trades": [...]}`; the day is `today` when
    not given. Each trade: `out_trade_no` and `amount` required; `kind` payment (default) or refund, `fee`,
    `share`, `receipt_amount`, `refund_request_no`, `finished_at` ("YYYY-MM-DD HH:MM:SS", China Standard Time, on
    the bill's day; its noon by default). Anything else is a ValueError saying what is wrong."""
    if not isinstance(body, Mapping):
        raise ValueError('give a JSON object: {"bill_date": "YYYY-MM-DD", "trades": [...]}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}: a bill has bill_date and trades")
    day = _day(body.get("bill_date", today.isoformat()))
    trades = body.get("trades")
    if not isinstance(trades, list):
        raise ValueError('"trades" must be a list of trades, such as [{"out_trade_no": "T-1", "amount": "88.00"}]')
    return day, [_trade(trade, day, n) for n, trade in enumerate(trades, 1)]


def _trade(fields: object, day: date, n: int) -> BillTrade:
    where = f"trade {n}"
    if not isinstance(fields, Mapping):
        raise ValueError(f"{where} must be a JSON object")
    unknown = sorted(set(fields) - TRADE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (a trade has {', '.join(sorted(TRADE_FIELDS))})")
    kind = fields.get("kind", PAYMENT)
    if kind not in (PAYMENT, REFUND):
        raise ValueError(f"{where}: kind must be {PAYMENT} or {REFUND}, not {kind!r}")
    out_trade_no = _text(fields, "out_trade_no", where, required=True)
    where = f"trade {n} ({out_trade_no})"
    amount = _yuan(fields, "amount", where, required=True)
    if amount <= 0:
        raise ValueError(f"{where}: amount must be more than 0.00")
    fee, share = _yuan(fields, "fee", where), _yuan(fields, "share", where)
    receipt = _yuan(fields, "receipt_amount", where) if "receipt_amount" in fields else None
    for name, value in (("fee", fee), ("share", share), ("receipt_amount", receipt)):
        if value is not None and value > amount:
            raise ValueError(f"{where}: {name} {value} is more than the amount {amount}")
    finished = _finished(fields.get("finished_at"), day, where)
    return BillTrade(kind, out_trade_no, trade_number(out_trade_no), amount, finished, fee=fee, share=share,
                     receipt_amount=receipt, refund_request_no=_text(fields, "refund_request_no", where))


def _day(value: object) -> date:
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError(f"bill_date must be a day as YYYY-MM-DD, not {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"bill_date {value!r} is not a day of the calendar") from None


def _text(fields: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{where}: {name} must be {'a non-empty' if required else 'a'} string")
    if any(c in value for c in ",\r\n\t"):  # the bill is a CSV: a cell holds none of them
        raise ValueError(f"{where}: {name} {value!r} has a comma, tab or line break")
    return value


def _yuan(fields: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> Decimal:
    if name not in fields and not required:
        return Decimal("0.00")
    value = fields.get(name)
    if not isinstance(value, str) or not _YUAN.match(value):
        raise ValueError(f"{where}: {name} must be yuan as a string such as \"88.00\", not {value!r}")
    return Decimal(value).quantize(_CENT)


def _finished(value: object, day: date, where: str) -> datetime:
    if value is None:
        return datetime.combine(day, NOON, CHINA_STANDARD_TIME)
    try:
        if not isinstance(value, str) or not _STAMP.match(value):
            raise ValueError
        finished = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_STANDARD_TIME)
    except ValueError:
        raise ValueError(f"{where}: finished_at must be \"YYYY-MM-DD HH:MM:SS\" (China Standard Time), "
                         f"not {value!r}") from None
    if finished.date() != day:
        raise ValueError(f"{where}: finished at {value}, not on the bill's day {day}")
    return finished
