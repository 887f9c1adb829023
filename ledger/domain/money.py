"""Money as `Decimal` yuan with two places: parsed strictly (ledger.domain.limits), never through float."""

from decimal import Decimal

from ledger.domain.limits import parse_amount

CENT = Decimal("0.01")

__all__ = ["CENT", "optional_amount", "parse_amount"]


def optional_amount(params: dict[str, str], field: str) -> Decimal | None:
    text = params.get(field, "")
    return parse_amount(text, field=field) if text else None
