"""What an answer of `alipay.trade.query` says about a trade, and when the ledger asks.

The ledger asks Alipay about a registered order while no notification has come, on Alipay's own retry
schedule; each answer is recorded as received (`TradeQueried`) and, where it says the trade was paid or
closed, applied with the same rules as a notification (ledger.domain.order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.domain.errors import InvalidRequest
from ledger.domain.limits import parse_amount
from ledger.domain.notice import KNOWN_STATUSES, PAID_STATUSES, TradeNotice

METHOD = "alipay.trade.query"
SCHEDULED, MANUAL = "schedule", "manual"  # what asked: the schedule, or someone (an operator, the merchant)
SOURCE = "trade_query"  # the source of a fact that a query answer established (a notification's is "notification")
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
# Why an answer came but was not believed: a configuration error to alert, unlike a gateway that is away.
UNBELIEVED = frozenset({"unsigned", "bad_signature", "malformed", "request_refused", "no_private_key", "no_auth_token",
                        "http_error", "invalid_url", "unexpected_code", "too_large", "mismatched", "unusable"})
# Business failures that say the gateway could not answer now, not that the trade is anything: asked again.
SYSTEM_ERRORS = frozenset({"ACQ.SYSTEM_ERROR", "ACQ.SYSTEM_BUSY"})
# How far a step may be spread past its time, as a share of the delay: a burst of registrations does not
# come back as a burst of queries.
SPREAD = 0.1


@dataclass(frozen=True)
class QueryAnswer:
    """A verified answer, read: `trade_status` is empty when the trade does not exist (or the query failed as
    a business matter: `sub_code` says why)."""

    code: str
    sub_code: str
    trade_status: str
    trade_no: str
    total_amount: Decimal | None
    receipt_amount: Decimal | None
    buyer_pay_amount: Decimal | None
    send_pay_date: str
    buyer_user_id: str
    out_trade_no: str = ""
    problem: str = ""  # why the answer cannot be applied, though it verified (then it is recorded as a failure)

    @classmethod
    def of(cls, code: str, sub_code: str, fields: Mapping[str, Any]) -> QueryAnswer:
        """Read with a notification's rules: amounts strictly in Alipay's "88.00" form; a paid status without a
        total_amount, or with an amount not in that form, is a `problem`, never a payment."""
        status = _text(fields, "trade_status") if code == "10000" else ""
        if status not in KNOWN_STATUSES:
            status = ""  # an unknown status is recorded as received, and applied as nothing
        problems: list[str] = []
        answer = cls(code=code, sub_code=sub_code, trade_status=status, trade_no=_text(fields, "trade_no"),
                     total_amount=_amount(fields, "total_amount", problems),
                     receipt_amount=_amount(fields, "receipt_amount", problems),
                     buyer_pay_amount=_amount(fields, "buyer_pay_amount", problems),
                     send_pay_date=_text(fields, "send_pay_date"),
                     buyer_user_id=_text(fields, "buyer_user_id") or _text(fields, "buyer_id"),
                     out_trade_no=_text(fields, "out_trade_no"))
        if status in PAID_STATUSES and answer.total_amount is None and not problems:
            problems.append("a paid trade_status without a total_amount")
        return replace(answer, problem="; ".join(problems)) if problems else answer

    @property
    def paid(self) -> bool:
        return self.trade_status in PAID_STATUSES

    def as_notice(self, app_id: str, out_trade_no: str, merchant: str, step_key: str) -> TradeNotice:
        """The answer as the facts a notification would carry, so one set of rules applies both; its
        `notify_id` names the query (`query:<step>`), its source is the trade query."""
        return TradeNotice(app_id=app_id, out_trade_no=out_trade_no, notify_id=step_key,
                           trade_status=self.trade_status, trade_no=self.trade_no, total_amount=self.total_amount,
                           receipt_amount=self.receipt_amount, buyer_pay_amount=self.buyer_pay_amount,
                           refund_fee=None, out_biz_no="", gmt_payment=self.send_pay_date, gmt_refund="",
                           gmt_close="", buyer_id=self.buyer_user_id, seller_id="", auth_app_id=merchant,
                           source=SOURCE)


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""


def _amount(fields: Mapping[str, Any], name: str, problems: list[str]) -> Decimal | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_amount(value, field=name)
    except InvalidRequest as exc:
        problems.append(str(exc))
        return None


def disagreement(queried: Mapping[str, Any], notice: TradeNotice) -> str:
    """What a notification and the last query answer disagree on (trade_no, amount, paid or not), or ""."""
    status = queried.get("trade_status", "")
    if not status or notice.source == SOURCE:
        return ""
    problems = []
    if notice.trade_no and queried.get("trade_no") and notice.trade_no != queried["trade_no"]:
        problems.append(f"trade_no {notice.trade_no} notified, {queried['trade_no']} queried")
    if (notice.total_amount is not None and queried.get("total_amount") is not None
            and notice.total_amount != queried["total_amount"]):
        problems.append(f"total_amount {notice.total_amount} notified, {queried['total_amount']} queried")
    if status in PAID_STATUSES and notice.trade_status == "TRADE_CLOSED" and not notice.is_refund:
        problems.append(f"closed unpaid notified, {status} queried")
    if status == "TRADE_CLOSED" and notice.trade_status in PAID_STATUSES and not queried.get("send_pay_date"):
        problems.append(f"{notice.trade_status} notified, closed unpaid queried")
    return "; ".join(problems)


def answer_disagrees(payment: Mapping[str, Any] | None, close_reason: str, answer: QueryAnswer, *,
                     raced: bool = False) -> str:
    """What a query answer about an order no longer pending disagrees on with what the notifications
    established, or "" (a trade closed after a full refund, or finished, agrees with a payment). `raced`: the
    question was asked while the order was pending, so an answer of "not paid" may predate the payment."""
    if payment is None:
        if close_reason == "unpaid" and answer.paid:
            return f"closed unpaid by a notification, {answer.trade_status} queried"
        return ""
    if answer.code == "10000" and not answer.trade_status:
        return ""  # a status the ledger does not know: recorded, not compared
    if raced and (not answer.trade_status or answer.trade_status == "WAIT_BUYER_PAY"):
        return ""
    if not answer.trade_status:
        return f"paid by a notification, the query answers {answer.sub_code or answer.code}"
    if answer.trade_status == "WAIT_BUYER_PAY":
        return "paid by a notification, WAIT_BUYER_PAY queried"
    if answer.trade_status == "TRADE_CLOSED" and not answer.send_pay_date:
        return "paid by a notification, closed unpaid queried"
    problems = []
    if answer.trade_no and payment.get("trade_no") and answer.trade_no != payment["trade_no"]:
        problems.append(f"trade_no {payment['trade_no']} notified, {answer.trade_no} queried")
    if answer.total_amount is not None and payment.get("total_amount") not in (None, answer.total_amount):
        problems.append(f"total_amount {payment['total_amount']} notified, {answer.total_amount} queried")
    return "; ".join(problems)


def spread_of(order_id: UUID) -> float:
    """A share in [0, 1) fixed by the order's id: where in its window each of its steps falls."""
    return (order_id.int % 10_000) / 10_000


def latest_due(registered_at: datetime, schedule: Sequence[float], step: int, order_id: UUID,
               now: datetime) -> int:
    """The last step due by `now`, from `step` on: steps overdue together (the ledger was down, or the app's key
    was configured later) are asked once, for the latest of them, not one after another."""
    while (after := due_at(registered_at, schedule, step + 1, order_id)) is not None and after <= now:
        step += 1
    return step


def due_at(registered_at: datetime, schedule: Sequence[float], step: int, order_id: UUID) -> datetime | None:
    """When scheduled query number `step` (0 for the first) is due: each delay of the schedule after the
    one before, counted from registration, spread by up to SPREAD of itself; None past the last."""
    if step >= len(schedule):
        return None
    return registered_at + timedelta(seconds=sum(schedule[: step + 1]) * (1 + SPREAD * spread_of(order_id)))
