"""Money as `Decimal` yuan with two places: parsed strictly, never through float."""

import re
from decimal import Decimal

from ledger.domain.errors import InvalidRequest

CENT = Decimal("0.01")


AMOUNT = re.compile(r"\d{1,13}(\.\d{1,2})?")


def parse_amount(text: str, *, field: str) -> Decimal:
    """Parse Alipay's `"88.00"` form strictly: digits, at most two decimals; no sign, exponent or spaces."""
    if not AMOUNT.fullmatch(text):
        raise InvalidRequest(f"{field} must be an amount in yuan such as \"88.00\", not {text!r}",
                             reason="bad_amount")
    return Decimal(text).quantize(CENT)


def optional_amount(params: dict[str, str], field: str) -> Decimal | None:
    text = params.get(field, "")
    return parse_amount(text, field=field) if text else None
