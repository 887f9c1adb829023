"""Money as `Decimal` yuan with two places: parsed strictly, never through float."""

from decimal import Decimal, InvalidOperation

from ledger.domain.errors import InvalidRequest

CENT = Decimal("0.01")


def parse_amount(text: str, *, field: str) -> Decimal:
    """Parse Alipay's `"88.00"` form; more than two decimals or a negative amount is an error."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidRequest(f"{field} is not an amount: {text!r}", reason="bad_amount") from None
    if not value.is_finite() or value < 0 or value != value.quantize(CENT):
        raise InvalidRequest(f"{field} must be a non-negative amount with at most two decimals: {text!r}",
                             reason="bad_amount")
    return value.quantize(CENT)


def optional_amount(params: dict[str, str], field: str) -> Decimal | None:
    text = params.get(field, "")
    return parse_amount(text, field=field) if text else None
