"""Alipay's open-platform message service: what a verified message says, and the stream of a message that no
order of the ledger holds.

Alipay posts its messages (`msg_method` and a JSON `biz_content`, no `trade_status`) to the same gateway URL
as trade notifications. The ledger applies the ones it knows to the order they name (`ORDER_MESSAGES`: the
refund's money back on the buyer's bank card, Order.receive_message); every other message, and one naming no
order the ledger holds, is recorded in a stream of its own (`AppMessage`), so nothing Alipay signed is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import ID_MAX, check_notification, check_text, has_control, parse_amount, parse_time
from ledger.domain.notice import merchant_of

MESSAGE_NAMESPACE = UUID("3d0c5b7e-8a41-5f62-b9d3-1e7a4c2f6b58")
MSG_METHOD_MAX = 128  # Alipay's method names ("alipay.trade.refund.depositback.completed") are far shorter
DEPOSIT_BACK = "alipay.trade.refund.depositback.completed"
ORDER_MESSAGES = frozenset({DEPOSIT_BACK})  # the messages the ledger applies to the order they name
DEPOSITED, TO_BALANCE = "S", "F"  # reached the buyer's bank card; credited to the buyer's Alipay balance instead
_ENVELOPE = {"msg_app_id": ID_MAX, "msg_uid": ID_MAX}  # beside what check_notification checks


def is_message(params: dict[str, str]) -> bool:
    """A message of the message service, not a trade notification: `msg_method` and `biz_content`, no
    `trade_status`."""
    return bool(params.get("msg_method")) and "biz_content" in params and "trade_status" not in params


@dataclass(frozen=True)
class DepositBack:
    """`alipay.trade.refund.depositback.completed`: how the bank leg of a refund already made ended."""

    out_request_no: str  # the refund request's number
    dback_status: str  # DEPOSITED or TO_BALANCE
    dback_amount: Decimal | None  # only when DEPOSITED
    bank_ack_time: str  # Alipay's yyyy-MM-dd HH:mm:ss, China Standard Time, as sent ("" when absent)
    est_bank_receipt_time: str
    trade_no: str

    @classmethod
    def from_biz(cls, biz: dict[str, Any]) -> DepositBack:
        out_request_no = check_text(_text(biz, "out_request_no"), field="out_request_no", most=ID_MAX, required=True)
        status = _text(biz, "dback_status")
        if status not in (DEPOSITED, TO_BALANCE):
            raise InvalidRequest(f"dback_status must be S or F, not {status!r}"[:200], reason="unknown_status")
        amount = None
        if status == DEPOSITED:  # Alipay sends the amount only when the money reached the card
            amount = parse_amount(_text(biz, "dback_amount"), field="dback_amount", minimum=Decimal("0.01"))
        times = {field: _text(biz, field) for field in ("bank_ack_time", "est_bank_receipt_time")}
        for field, text in times.items():
            if text:
                parse_time(text, field=field)
        return cls(out_request_no, status, amount, times["bank_ack_time"], times["est_bank_receipt_time"],
                   check_text(_text(biz, "trade_no"), field="trade_no", most=ID_MAX))


@dataclass(frozen=True)
class MessageNotice:
    app_id: str
    notify_id: str
    msg_method: str
    merchant: str  # a service provider's merchant (msg_app_id, or the legacy auth_app_id); "" for the app's own
    out_trade_no: str  # the order biz_content names, within Alipay's limits; "" when it names none
    deposit_back: DepositBack | None  # for DEPOSIT_BACK

    @classmethod
    def from_params(cls, params: dict[str, str]) -> MessageNotice:
        """Read a verified message; InvalidRequest for what is unusable (no notify_id, biz_content that is not a
        JSON object, a deposit-back without its status, anything beyond Alipay's limits)."""
        check_notification(params)
        for field in ("app_id", "notify_id"):
            if not params.get(field):
                raise InvalidRequest(f"message has no {field}", reason="missing_field")
        msg_method = check_text(params["msg_method"], field="msg_method", most=MSG_METHOD_MAX)
        for field, most in _ENVELOPE.items():
            check_text(params.get(field, ""), field=field, most=most)
        biz = _biz_content(params["biz_content"])
        return cls(app_id=params["app_id"], notify_id=params["notify_id"], msg_method=msg_method,
                   merchant=message_merchant(params), out_trade_no=_order_named(biz),
                   deposit_back=DepositBack.from_biz(biz) if msg_method == DEPOSIT_BACK else None)

    @property
    def concerns_order(self) -> bool:
        """Whether the ledger applies it to the order it names (else it goes to an AppMessage stream)."""
        return self.msg_method in ORDER_MESSAGES and bool(self.out_trade_no)


def message_merchant(params: dict[str, str]) -> str:
    """The merchant a service provider's (ISV) message is for: `msg_app_id` (an application message), or the
    legacy `auth_app_id`; empty for the app's own."""
    app_id = params.get("app_id", "")
    return merchant_of(app_id, params.get("msg_app_id") or params.get("auth_app_id") or app_id)


def _order_named(biz: dict[str, Any]) -> str:
    """biz_content's out_trade_no; "" when there is none the ledger could key an order by (not text, too long,
    a control character: no order of the ledger has such a number)."""
    named = biz.get("out_trade_no")
    if not isinstance(named, str) or len(named) > ID_MAX or has_control(named):
        return ""
    return named


def _biz_content(text: str) -> dict[str, Any]:
    try:
        # Numbers as their text: an amount sent as a JSON number is never read through float.
        biz = json.loads(text, parse_float=str, parse_int=str)
    except (ValueError, RecursionError):
        raise InvalidRequest("biz_content is not JSON", reason="bad_biz_content") from None
    if not isinstance(biz, dict):
        raise InvalidRequest("biz_content is not a JSON object", reason="bad_biz_content")
    return biz


def _text(biz: dict[str, Any], field: str) -> str:
    value = biz.get(field, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"biz_content's {field} is not text", reason="bad_biz_content")
    return value


class AppMessage(Aggregate):
    """One stream per message (app_id, notify_id) that no order holds: an unknown `msg_method`, or one naming no
    order of the ledger. Copies of it are recorded as deliveries, up to a bound, and change nothing."""

    @staticmethod
    def create_id(app_id: str, notify_id: str) -> UUID:
        return uuid5(MESSAGE_NAMESPACE, f"alipay-message/{app_id}/{notify_id}")

    @event("Opened")
    def __init__(self, app_id: str, notify_id: str, msg_method: str, merchant: str = "") -> None:
        self.app_id, self.notify_id, self.msg_method, self.merchant = app_id, notify_id, msg_method, merchant
        self.deliveries = 0

    def receive(self, message: MessageNotice, params: dict[str, str], *, delivery_id: str, received_at: datetime,
                remote_addr: str, max_copies: int, key: str = "") -> bool:
        """Record one verified delivery; False for a copy beyond `max_copies`, which is not recorded."""
        if self.deliveries >= max_copies:
            return False
        self._receive(params=dict(params), notify_id=message.notify_id, msg_method=message.msg_method,
                      out_trade_no=message.out_trade_no, delivery_id=delivery_id, received_at=received_at,
                      remote_addr=remote_addr, duplicate=self.deliveries > 0, key=key)
        return True

    @event("MessageReceived")
    def _receive(self, params: dict[str, str], notify_id: str, msg_method: str, out_trade_no: str, delivery_id: str,
                 received_at: datetime, remote_addr: str, duplicate: bool, key: str = "") -> None:
        self.deliveries += 1
