"""Alipay's own limits on the fields the ledger books, in one place: the domain checks them, the read
model's columns are sized from them, so nothing is ever truncated or refused by a database.

Alipay documents `out_trade_no`, `trade_no` and `out_biz_no` as at most 64 characters, `subject` as at most
256, and amounts from 0.01 to 100,000,000.00 yuan; its times are `yyyy-MM-dd HH:mm:ss` in China Standard
Time. What lies outside is not a trade Alipay would notify, whoever signed it.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from ledger.domain.errors import InvalidRequest

APP_ID_MAX = 32
ID_MAX = 64  # out_trade_no, trade_no, out_biz_no, auth_app_id, buyer_id, seller_id
NOTIFY_ID_MAX = 128
SUBJECT_MAX = 256
AMOUNT_MAX = Decimal("100000000.00")
AMOUNT_MIN = Decimal("0.01")  # of an order's total; a paid notification of 0.00 is an anomaly, not a payment
# Alipay opened in 2004; a time outside these years is a broken clock or a hostile body, never a trade.
EARLIEST_YEAR, LATEST_YEAR = 2004, 2099

# [0-9], not \d: \d also takes full-width and Arabic-Indic digits, which Decimal() then reads as ASCII ones.
AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?")
IDENTIFIERS = {"app_id": APP_ID_MAX, "out_trade_no": ID_MAX, "trade_no": ID_MAX, "out_biz_no": ID_MAX,
               "auth_app_id": ID_MAX, "buyer_id": ID_MAX, "seller_id": ID_MAX, "notify_id": NOTIFY_ID_MAX}
TIMES = ("notify_time", "gmt_create", "gmt_payment", "gmt_refund", "gmt_close")
BOOKED = {**IDENTIFIERS, "subject": SUBJECT_MAX, "trade_status": 32}


# Unicode's control characters (category Cc: C0, DEL, C1) and lone surrogates (Cs), as one character class:
# a regular expression scans in C (a loop over unicodedata.category cost more than the signature check).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control(text: str) -> bool:
    """Control characters (NUL, line breaks, DEL, C1) and lone surrogates: no database column takes all of them."""
    return _CONTROL.search(text) is not None


def check_text(text: str, *, field: str, most: int, required: bool = False) -> str:
    """`text` if it has at most `most` characters and no control character; InvalidRequest otherwise."""
    if required and not text:
        raise InvalidRequest(f"{field} is required", reason="missing_field")
    if len(text) > most:
        raise InvalidRequest(f"{field} has {len(text)} characters; Alipay allows at most {most}", reason="too_long")
    if has_control(text):
        raise InvalidRequest(f"{field} holds a control character", reason="control_character")
    return text


# The same, but for text written for people, where tabs and line breaks belong (notes, log details).
TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
NOTE_MAX = 2000


def check_note(text: str, *, field: str = "note", most: int = NOTE_MAX) -> str:
    """Free text an operator writes (why an order was resolved): lines and tabs, no other control character."""
    if len(text) > most:
        raise InvalidRequest(f"{field} has {len(text)} characters; at most {most}", reason="too_long")
    if TEXT_CONTROL.search(text):
        raise InvalidRequest(f"{field} holds a control character", reason="control_character")
    return text


def parse_amount(text: str, *, field: str, minimum: Decimal = Decimal("0.00")) -> Decimal:
    """Alipay's `"88.00"` form, strictly: ASCII digits, at most two decimals, from `minimum` to 100,000,000.00;
    no sign, exponent or spaces."""
    if not isinstance(text, str) or not AMOUNT.fullmatch(text):
        raise InvalidRequest(f"{field} must be an amount in yuan such as \"88.00\", not {text!r}"[:200],
                             reason="bad_amount")
    amount = Decimal(text).quantize(Decimal("0.01"))
    if not minimum <= amount <= AMOUNT_MAX:
        raise InvalidRequest(f"{field} must be from {minimum} to {AMOUNT_MAX:,} yuan, not {text}", reason="bad_amount")
    return amount


def parse_time(text: str, *, field: str) -> datetime:
    """Alipay's `yyyy-MM-dd HH:mm:ss[.SSS]` (naive, China Standard Time) within the sane years."""
    moment = None
    if TIME.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
    if moment is None or not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise InvalidRequest(f"{field} must be a time such as 2026-11-21 10:00:00 between {EARLIEST_YEAR} and "
                             f"{LATEST_YEAR}, not {text!r}"[:200], reason="bad_time")
    return moment


def check_notification(params: dict[str, str]) -> None:
    """Every booked field of a notification within Alipay's limits; InvalidRequest naming the first that is not."""
    # The common case, all within, in few steps (this runs for every notification); the checks that name the
    # field and the limit run only when something is off.
    for field, most in BOOKED.items():
        value = params.get(field)
        if value and (len(value) > most or _CONTROL.search(value)):
            check_text(value, field=field, most=most)
    for field in TIMES:
        if value := params.get(field):
            parse_time(value, field=field)


def check_registration(out_trade_no: str, total_amount: str, subject: str) -> Decimal:
    """A merchant's registration of an order within the same limits; its amount (at least 0.01)."""
    check_text(out_trade_no, field="out_trade_no", most=ID_MAX, required=True)
    check_text(subject, field="subject", most=SUBJECT_MAX)
    return parse_amount(total_amount, field="total_amount", minimum=AMOUNT_MIN)
