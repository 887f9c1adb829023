"""What a verified Alipay notification says about its trade, parsed once into plain values."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import check_notification
from ledger.domain.money import optional_amount


def merchant_of(app_id: str, auth_app_id: str) -> str:
    """The merchant a service provider (ISV) acts for: its `auth_app_id`, where that differs from the app_id
    (Alipay also sends an app's own id there); empty for an app's own trade."""
    return auth_app_id if auth_app_id != app_id else ""


PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
KNOWN_STATUSES = PAID_STATUSES | {"WAIT_BUYER_PAY", "TRADE_CLOSED"}


@dataclass(frozen=True)
class TradeNotice:
    app_id: str
    out_trade_no: str
    notify_id: str
    trade_status: str
    trade_no: str
    total_amount: Decimal | None
    receipt_amount: Decimal | None
    buyer_pay_amount: Decimal | None
    refund_fee: Decimal | None
    out_biz_no: str
    gmt_payment: str
    gmt_refund: str
    gmt_close: str
    buyer_id: str
    seller_id: str
    auth_app_id: str = ""
    source: str = "notification"  # or "trade_query": the facts of a query answer (ledger.domain.trade_query)

    @classmethod
    def from_params(cls, params: dict[str, str]) -> TradeNotice:
        """Read the fields the status machine needs; raises InvalidRequest for anything unusable (a missing
        field, an unknown status, anything beyond Alipay's limits: ledger.domain.limits)."""
        check_notification(params)
        for field in ("app_id", "out_trade_no", "notify_id"):
            if not params.get(field):
                raise InvalidRequest(f"notification has no {field}", reason="missing_field")
        status = params.get("trade_status", "")
        if status and status not in KNOWN_STATUSES:
            raise InvalidRequest(f"unknown trade_status {status!r}", reason="unknown_status")
        notice = cls(
            app_id=params["app_id"],
            out_trade_no=params["out_trade_no"],
            notify_id=params["notify_id"],
            trade_status=status,
            trade_no=params.get("trade_no", ""),
            total_amount=optional_amount(params, "total_amount"),
            receipt_amount=optional_amount(params, "receipt_amount"),
            buyer_pay_amount=optional_amount(params, "buyer_pay_amount"),
            refund_fee=optional_amount(params, "refund_fee"),
            out_biz_no=params.get("out_biz_no", ""),
            gmt_payment=params.get("gmt_payment", ""),
            gmt_refund=params.get("gmt_refund", ""),
            gmt_close=params.get("gmt_close", ""),
            buyer_id=params.get("buyer_id", ""),
            seller_id=params.get("seller_id", ""),
            auth_app_id=params.get("auth_app_id", ""),
        )
        if notice.implies_payment and notice.total_amount is None:
            raise InvalidRequest("a paid or refunded trade's notification has no total_amount",
                                 reason="missing_field")
        return notice

    @property
    def merchant(self) -> str:
        """The merchant a service provider's (ISV) notification is for; empty for an app's own trade."""
        return merchant_of(self.app_id, self.auth_app_id)

    @property
    def is_refund(self) -> bool:
        # A refund notification carries refund_fee; an unpaid close never does.
        return self.refund_fee is not None and self.trade_status in ("TRADE_SUCCESS", "TRADE_CLOSED")

    @property
    def implies_payment(self) -> bool:
        return self.trade_status in PAID_STATUSES or self.is_refund

    @property
    def refund_key(self) -> str:
        # Refunds are idempotent by out_biz_no; the cumulative refund_fee identifies one without it.
        return self.out_biz_no or f"refund_fee:{self.refund_fee}"
