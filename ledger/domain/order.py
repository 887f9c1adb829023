"""The Order aggregate: one stream per (app_id, merchant, out_trade_no), every callback and state change an
event. The merchant is the `auth_app_id` of a service provider's (ISV) notification, where it differs from
the `app_id`: two merchants of one provider may use the same out_trade_no. For an app's own orders it is
empty, and the stream id is what it always was.

Public methods decide (comparisons, amounts, idempotency); private `@event` methods only record, because
they run again on every replay. State changes are facts that happen at most once each (payment, finish,
close, one refund per out_biz_no, one deposit-back per out_request_no), so any interleaving or duplication
of the same notifications ends in the same state, and the status never goes backwards.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain import outbox
from ledger.domain.errors import InvalidRequest, NothingToDo, OrderConflict
from ledger.domain.message import MessageNotice
from ledger.domain.notice import TradeNotice, merchant_of
from ledger.domain.trade_query import QueryAnswer, answer_disagrees, disagreement

ORDER_NAMESPACE = UUID("6f1c9c1e-3f0b-5d2a-9a57-3c2f1d0e8b41")
ZERO = Decimal("0.00")
# Copies of one notify_id recorded in full: Alipay re-sends a notification about 8 times in 25 hours, so
# more than this is a replay; beyond it a copy is answered `success` and only counted.
DEFAULT_MAX_COPIES = 20


class Status(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    FINISHED = "FINISHED"
    CLOSED = "CLOSED"


class Order(Aggregate):
    @staticmethod
    def create_id(app_id: str, out_trade_no: str, merchant: str = "") -> UUID:
        if merchant_of(app_id, merchant):
            return uuid5(ORDER_NAMESPACE, f"alipay-isv/{app_id}/{merchant}/{out_trade_no}")
        return uuid5(ORDER_NAMESPACE, f"alipay/{app_id}/{out_trade_no}")

    @event("Opened")
    def __init__(self, app_id: str, out_trade_no: str, merchant: str = "") -> None:
        self.app_id = app_id
        self.out_trade_no = out_trade_no
        self.merchant = merchant_of(app_id, merchant)
        self.registered = False
        self.registered_amount: Decimal | None = None
        self.subject = ""
        self.payment: dict[str, Any] | None = None
        self.finished = False
        self.close_reason = ""
        self.refunds: dict[str, Decimal] = {}
        self.refunded = ZERO
        self.mismatched_amounts: list[str] = []
        self.anomalies: list[str] = []  # what Alipay notified that cannot be booked, once each (kind:key)
        self.deliveries: dict[str, int] = {}  # notify_id -> deliveries recorded
        self.outbox: dict[str, dict[str, Any]] = {}  # change -> its delivery to the merchant's system
        self.query_steps = 0  # the next step of the query schedule (those before are done or were skipped)
        self.query_taken: tuple[int, datetime] | None = None  # the step a worker took last, and when
        self.queried: dict[str, Any] | None = None  # what the last trade query answered
        self.queries_exhausted = False
        self.messages: dict[str, int] = {}  # a message's notify_id -> deliveries recorded (ledger.domain.message)
        self.deposit_backs: dict[str, str] = {}  # a refund's out_request_no -> how its bank leg ended (S or F)

    @property
    def status(self) -> Status:
        if self.close_reason:
            return Status.CLOSED
        if self.finished:
            return Status.FINISHED
        return Status.PAID if self.payment else Status.PENDING

    # -- commands -------------------------------------------------------------------------------

    def register(self, total_amount: Decimal, subject: str) -> None:
        if self.registered:
            if (self.registered_amount, self.subject) != (total_amount, subject):
                raise OrderConflict(f"order {self.out_trade_no} is registered with amount "
                                    f"{self.registered_amount} and another subject or amount")
            return
        self._register(total_amount=total_amount, subject=subject)
        if self.payment and self.payment["total_amount"] != total_amount:
            self._mismatch(notified=self.payment["total_amount"], expected=total_amount, notify_id="")

    def receive(self, notice: TradeNotice, params: dict[str, str], *, delivery_id: str,
                received_at: datetime, remote_addr: str, max_copies: int = DEFAULT_MAX_COPIES, key: str = "") -> bool:
        """Record one verified delivery, then apply whatever new facts it carries; False when the delivery
        was a copy beyond `max_copies` of its notify_id, which is not recorded (its facts are in already:
        they came with the first copy, and a notify_id's signed content never changes). `key` is the
        fingerprint of the Alipay key that verified it, recorded with it for the auditor."""
        if self.deliveries.get(notice.notify_id, 0) >= max_copies:
            return False
        self._receive(params=dict(params), notify_id=notice.notify_id, delivery_id=delivery_id,
                      received_at=received_at, remote_addr=remote_addr,
                      duplicate=notice.notify_id in self.deliveries, key=key)
        if self.queried and (problem := disagreement(self.queried, notice)):
            self._flag("query_disagrees", notice.notify_id, f"the notification and Alipay's answer to a trade "
                                                            f"query disagree: {problem}")
        self._apply(notice)
        return True

    def _apply(self, notice: TradeNotice) -> None:
        if notice.implies_payment and not self._accept_amount(notice):
            return
        if notice.implies_payment and not self.payment and notice.total_amount == ZERO:
            # Alipay never confirms a payment of nothing: whoever signed it, it is not booked.
            self._flag("zero_payment", notice.notify_id, "a paid status with total_amount 0.00")
            return
        paid = self.payment["total_amount"] if self.payment else notice.total_amount
        if notice.is_refund and notice.refund_fee is not None and paid is not None and notice.refund_fee > paid:
            # refund_fee is the total refunded so far: more than was paid cannot be a refund of this trade,
            # and a notification that says so is booked in no part.
            self._flag("refund_exceeds_payment", notice.refund_key,
                       f"refund_fee {notice.refund_fee} is more than the {paid} paid")
            return
        if notice.implies_payment and not self.payment:
            self._confirm(notice)
        refund_fee = notice.refund_fee
        if notice.is_refund and refund_fee is not None and notice.refund_key not in self.refunds:
            # refund_fee is the total refunded so far: a refund's own amount is what it adds to that.
            self._record_refund(refund_key=notice.refund_key, out_biz_no=notice.out_biz_no,
                                refund_fee=refund_fee, amount=max(ZERO, refund_fee - self.refunded),
                                gmt_refund=notice.gmt_refund, notify_id=notice.notify_id)
        if notice.trade_status == "TRADE_FINISHED" and not self.finished:
            self._finish(gmt_close=notice.gmt_close, notify_id=notice.notify_id)
        if notice.trade_status == "TRADE_CLOSED" and not self.close_reason:
            self._close(reason="refunded" if notice.is_refund else "unpaid",
                        gmt_close=notice.gmt_close, notify_id=notice.notify_id, source=notice.source)

    # -- asking Alipay about the trade (ledger.domain.trade_query) ---------------------------------

    def take_query_step(self, step: int, now: datetime, lease: timedelta) -> bool:
        """Take scheduled query `step` (0 for the first; a later one when those between are overdue: they are
        skipped, one question answers for them): False when the order no longer waits for its payment, the
        step is done, or another worker took a step less than `lease` ago (the version check fences two workers
        taking one at once)."""
        if self.status != Status.PENDING or self.queries_exhausted or step < self.query_steps:
            return False
        if self.query_taken is not None:
            taken_step, taken_at = self.query_taken
            if taken_step >= self.query_steps and taken_at + lease > now:
                return False
        self._take_query(step=step, taken_at=now)
        return True

    def record_query(self, answer: QueryAnswer, *, text: str, key: str, step: int | None, source: str, who: str,
                     queried_at: datetime, last: bool = False, answer_id: str = "") -> None:
        """Record a verified answer exactly as received (`text`, verified by the Alipay key `key`), then apply
        what it says with a notification's rules: paid confirms the payment (the amount checked, exactly once),
        closed unpaid closes, waiting or no such trade changes nothing. `step` is the schedule's step (None
        when someone asked); after the `last`, an order still unpaid is marked and alerted."""
        self._queried(step=step, source=source, who=who, app_id=self.app_id, merchant=self.merchant, text=text,
                      key=key, code=answer.code, sub_code=answer.sub_code, trade_status=answer.trade_status,
                      trade_no=answer.trade_no, total_amount=answer.total_amount, send_pay_date=answer.send_pay_date,
                      queried_at=queried_at, answer_id=answer_id)
        step_key = f"query:{queried_at.isoformat()}"  # each answer its own: a later disagreement is flagged too
        if self.status == Status.PENDING and answer.trade_status == "TRADE_CLOSED" and answer.send_pay_date:
            self._flag("query_closed_after_payment", "query", "Alipay answers the trade was paid and then closed "
                       "(refunded in full), and no notification of either came: not booked")
        elif self.status == Status.PENDING and (answer.paid or answer.trade_status == "TRADE_CLOSED"):
            self._apply(answer.as_notice(self.app_id, self.out_trade_no, self.merchant, step_key))
        # A scheduled step was taken while the order was pending: its "not paid yet" may predate a payment
        # notified since, so only what cannot change (trade_no, amounts) counts against the notifications.
        elif problem := answer_disagrees(self.payment, self.close_reason, answer, raced=step is not None):
            self._flag("query_disagrees", step_key, f"Alipay's answer to a trade query disagrees with the "
                                                    f"notifications: {problem}")
        self._after_step(step, last)

    def record_query_failure(self, *, reason: str, retryable: bool, error: str, text: str, step: int | None,
                             source: str, who: str, queried_at: datetime, last: bool = False,
                             answer_id: str = "") -> None:
        """Record a query that got no answer to believe (none in time, unsigned, badly signed...): its text,
        if any, is kept as evidence and never applied. The schedule goes on to the next step."""
        self._query_failed(step=step, source=source, who=who, reason=reason, retryable=retryable,
                           error=error[:500], text=text, queried_at=queried_at, answer_id=answer_id)
        self._after_step(step, last)

    def _after_step(self, step: int | None, last: bool) -> None:
        if step is not None and last and self.status == Status.PENDING and not self.queries_exhausted:
            self._exhaust(steps=self.query_steps)

    # -- the message service (ledger.domain.message) ---------------------------------------------

    def receive_message(self, message: MessageNotice, params: dict[str, str], *, delivery_id: str,
                        received_at: datetime, remote_addr: str, max_copies: int = DEFAULT_MAX_COPIES,
                        key: str = "") -> bool:
        """Record one verified message about this order, then apply it once: a refund's deposit-back is one fact
        per out_request_no, whatever copies or later messages say. False, as for `receive`, for a copy beyond
        `max_copies`. Nothing is posted: the refund itself was booked when it was made."""
        if self.messages.get(message.notify_id, 0) >= max_copies:
            return False
        self._receive_message(params=dict(params), notify_id=message.notify_id, msg_method=message.msg_method,
                              out_trade_no=self.out_trade_no, delivery_id=delivery_id, received_at=received_at,
                              remote_addr=remote_addr, duplicate=message.notify_id in self.messages, key=key)
        back = message.deposit_back
        if back is not None and back.out_request_no not in self.deposit_backs:
            self._deposit_back(out_request_no=back.out_request_no, dback_status=back.dback_status,
                               dback_amount=back.dback_amount, bank_ack_time=back.bank_ack_time,
                               est_bank_receipt_time=back.est_bank_receipt_time, trade_no=back.trade_no,
                               notify_id=message.notify_id)
        return True

    # -- delivery of changes to the merchant's system ---------------------------------------------

    def begin_delivery(self, change: str, now: datetime, lease: timedelta, policy: outbox.RetryPolicy) -> int | None:
        """The attempt number to make now, or None when nothing is due (done, in flight, or early)."""
        entry = self._entry(change)
        if not outbox.is_due(entry, now, lease):
            return None
        if entry["state"] == outbox.IN_FLIGHT:
            # Its worker died, or never came back within the lease: that attempt counts, and may be the last.
            lost = "attempt lost: no outcome within the lease (worker stopped?)"
            if outbox.exhausted(entry, entry["attempts"], policy):
                self._delivery_failed(change=change, attempt=entry["attempts"], error=lost, next_retry_at=None)
                self._abandon(change=change, attempts=entry["attempts"], error=lost)
                return None
            self._delivery_failed(change=change, attempt=entry["attempts"], error=lost, next_retry_at=now)
        self._attempt(change=change, attempt=entry["attempts"] + 1, started_at=now)
        return int(entry["attempts"])

    def finish_delivery(self, change: str, attempt: int, *, ok: bool, error: str, now: datetime,
                        policy: outbox.RetryPolicy) -> str:
        """Record an attempt's outcome once; returns succeeded, retry, abandoned, or stale."""
        entry = self._entry(change)
        if entry["state"] != outbox.IN_FLIGHT or entry["attempts"] != attempt:
            return "stale"  # recorded already, or a newer attempt took over after the lease
        if ok:
            self._delivered(change=change, attempt=attempt)
            return "succeeded"
        if not outbox.exhausted(entry, attempt, policy):
            retry = attempt - entry["round_start"]
            self._delivery_failed(change=change, attempt=attempt, error=error[:500],
                                  next_retry_at=now + timedelta(seconds=policy.delay(retry)))
            return "retry"
        self._delivery_failed(change=change, attempt=attempt, error=error[:500], next_retry_at=None)
        self._abandon(change=change, attempts=attempt, error=error[:500])
        return "abandoned"

    def request_manual_retry(self, who: str, note: str) -> list[str]:
        changes = outbox.abandoned(self.outbox)
        if not changes:
            raise NothingToDo(f"order {self.out_trade_no} has no abandoned delivery")
        self._manual_retry(changes=changes, who=who, note=note)
        return changes

    def resolve_manually(self, who: str, note: str) -> list[str]:
        changes = outbox.abandoned(self.outbox)
        if not changes:
            raise NothingToDo(f"order {self.out_trade_no} has no abandoned delivery")
        if not note.strip():
            raise InvalidRequest("resolving by hand needs a note saying why")
        self._resolve(changes=changes, who=who, note=note)
        return changes

    def _entry(self, change: str) -> dict[str, Any]:
        if change not in self.outbox:
            raise InvalidRequest(f"order {self.out_trade_no} has no change {change!r} to deliver")
        return self.outbox[change]

    def _confirm(self, notice: TradeNotice) -> None:
        self._confirm_payment(
            trade_no=notice.trade_no, total_amount=notice.total_amount,
            receipt_amount=notice.receipt_amount, buyer_pay_amount=notice.buyer_pay_amount,
            gmt_payment=notice.gmt_payment, buyer_id=notice.buyer_id, seller_id=notice.seller_id,
            notify_id=notice.notify_id, source=notice.source)

    def _flag(self, kind: str, key: str, detail: str) -> None:
        if f"{kind}:{key}" not in self.anomalies:
            self._anomaly(kind=kind, key=key, detail=detail)

    def _accept_amount(self, notice: TradeNotice) -> bool:
        expected = self.registered_amount if self.registered else (
            self.payment["total_amount"] if self.payment else None)
        if expected is None or notice.total_amount == expected:
            return True
        if str(notice.total_amount) not in self.mismatched_amounts:
            self._mismatch(notified=notice.total_amount, expected=expected, notify_id=notice.notify_id)
        return False

    # -- events: record only --------------------------------------------------------------------

    @event("OrderRegistered")
    def _register(self, total_amount: Decimal, subject: str) -> None:
        self.registered, self.registered_amount, self.subject = True, total_amount, subject

    @event("CallbackReceived")
    def _receive(self, params: dict[str, str], notify_id: str, delivery_id: str, received_at: datetime,
                 remote_addr: str, duplicate: bool, key: str = "") -> None:
        self.deliveries[notify_id] = self.deliveries.get(notify_id, 0) + 1

    @event("AmountMismatch")
    def _mismatch(self, notified: Decimal | None, expected: Decimal, notify_id: str) -> None:
        self.mismatched_amounts.append(str(notified))

    @event("AnomalyFound")
    def _anomaly(self, kind: str, key: str, detail: str) -> None:
        self.anomalies.append(f"{kind}:{key}")

    @event("PaymentConfirmed")
    def _confirm_payment(self, trade_no: str, total_amount: Decimal | None, receipt_amount: Decimal | None,
                         buyer_pay_amount: Decimal | None, gmt_payment: str, buyer_id: str, seller_id: str,
                         notify_id: str, source: str = "notification") -> None:
        self.outbox["payment"] = outbox.new_entry("payment")
        self.payment = {"trade_no": trade_no, "total_amount": total_amount, "receipt_amount": receipt_amount,
                        "buyer_pay_amount": buyer_pay_amount, "gmt_payment": gmt_payment,
                        "buyer_id": buyer_id, "seller_id": seller_id, "source": source}

    @event("RefundRecorded")
    def _record_refund(self, refund_key: str, out_biz_no: str, refund_fee: Decimal, amount: Decimal,
                       gmt_refund: str, notify_id: str) -> None:
        self.refunds[refund_key] = refund_fee
        self.refunded += amount
        self.outbox[f"refund:{refund_key}"] = outbox.new_entry(f"refund:{refund_key}")

    @event("TradeFinished")
    def _finish(self, gmt_close: str, notify_id: str) -> None:
        self.finished = True
        self.outbox["finished"] = outbox.new_entry("finished")

    @event("TradeClosed")
    def _close(self, reason: str, gmt_close: str, notify_id: str, source: str = "notification") -> None:
        self.close_reason = reason
        self.outbox["closed"] = outbox.new_entry("closed")

    @event("QueryStepTaken")
    def _take_query(self, step: int, taken_at: datetime) -> None:
        self.query_taken = (step, taken_at)

    @event("TradeQueried")
    def _queried(self, step: int | None, source: str, who: str, app_id: str, merchant: str, text: str, key: str,
                 code: str, sub_code: str, trade_status: str, trade_no: str, total_amount: Decimal | None,
                 send_pay_date: str, queried_at: datetime, answer_id: str) -> None:
        self.queried = {"trade_status": trade_status, "trade_no": trade_no, "total_amount": total_amount,
                        "send_pay_date": send_pay_date, "sub_code": sub_code}
        if step is not None and step >= self.query_steps:
            self.query_steps = step + 1

    @event("TradeQueryFailed")
    def _query_failed(self, step: int | None, source: str, who: str, reason: str, retryable: bool, error: str,
                      text: str, queried_at: datetime, answer_id: str) -> None:
        if step is not None and step >= self.query_steps:
            self.query_steps = step + 1

    @event("QueriesExhausted")
    def _exhaust(self, steps: int) -> None:
        self.queries_exhausted = True

    @event("MessageReceived")
    def _receive_message(self, params: dict[str, str], notify_id: str, msg_method: str, out_trade_no: str,
                         delivery_id: str, received_at: datetime, remote_addr: str, duplicate: bool,
                         key: str = "") -> None:
        self.messages[notify_id] = self.messages.get(notify_id, 0) + 1

    @event("RefundDepositedBack")
    def _deposit_back(self, out_request_no: str, dback_status: str, dback_amount: Decimal | None,
                      bank_ack_time: str, est_bank_receipt_time: str, trade_no: str, notify_id: str) -> None:
        self.deposit_backs[out_request_no] = dback_status

    @event("DeliveryAttempted")
    def _attempt(self, change: str, attempt: int, started_at: datetime) -> None:
        self.outbox[change].update(state=outbox.IN_FLIGHT, attempts=attempt, started_at=started_at)

    @event("DeliverySucceeded")
    def _delivered(self, change: str, attempt: int) -> None:
        self.outbox[change].update(state=outbox.SUCCEEDED, next_retry_at=None)

    @event("DeliveryFailed")
    def _delivery_failed(self, change: str, attempt: int, error: str, next_retry_at: datetime | None) -> None:
        self.outbox[change].update(state=outbox.FAILED, last_error=error, next_retry_at=next_retry_at)

    @event("DeliveryAbandoned")
    def _abandon(self, change: str, attempts: int, error: str) -> None:
        self.outbox[change].update(state=outbox.ABANDONED, next_retry_at=None)

    @event("ManualRetryRequested")
    def _manual_retry(self, changes: list[str], who: str, note: str) -> None:
        for change in changes:
            entry = self.outbox[change]
            entry.update(state=outbox.RETRY_REQUESTED, round_start=entry["attempts"])

    @event("ManuallyResolved")
    def _resolve(self, changes: list[str], who: str, note: str) -> None:
        for change in changes:
            self.outbox[change].update(state=outbox.RESOLVED)
