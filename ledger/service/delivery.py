"""Delivering an order's changes to the merchant's system: one attempt per call, idempotent.

Called by the `deliver` actor with ids only. At-least-once messaging means a call can come twice, or
late: the order's own record of the delivery decides (done, in flight, not yet due), and the version
check fences two workers racing for the same attempt. The HTTP call happens between two commits, never
inside one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.outbound.downstream import Outcome
from ledger.domain.order import Order
from ledger.domain.outbox import RetryPolicy
from ledger.service.saving import save_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")


class DeliveryService:
    def __init__(self, store: LedgerStore, client: Any, policy: RetryPolicy, *, lease: timedelta,
                 clock: Callable[[], datetime], schedule: Callable[[str, str, float], None]) -> None:
        """`client.post(payload, idempotency_key)` answers an Outcome; `schedule(order_id, change, seconds)`
        sends the retry message with a delay."""
        self.store, self.client, self.policy, self.lease = store, client, policy, lease
        self.clock, self.schedule = clock, schedule

    def deliver(self, order_id: str, change: str) -> str:
        """Make the attempt that is due, if any; returns what happened."""
        begun = self._with_order(order_id, lambda order: order.begin_delivery(change, self.clock(), self.lease,
                                                                                self.policy))
        if begun is None:
            return "not_due"
        order, attempt = begun
        try:
            outcome = self.client.post(payload(order, change), idempotency_key=f"{order_id}:{change}")
        except Exception as exc:  # a bug must count as a failed attempt, or it would be retried for ever
            log.exception("delivery of %s %s raised", order_id, change)
            outcome = Outcome(ok=False, status=None, error=f"{type(exc).__name__}: {exc}")
        finished = self._with_order(order_id, lambda o: o.finish_delivery(
            change, attempt, ok=outcome.ok, error=outcome.error, now=self.clock(), policy=self.policy))
        result = finished[1] if finished else "stale"
        if result == "retry":
            entry = finished[0].outbox[change]  # type: ignore[index]
            self.schedule(order_id, change, max(0.0, (entry["next_retry_at"] - self.clock()).total_seconds()))
        log.info("delivery of %s %s attempt %s: %s %s", order_id, change, attempt, result, outcome.error)
        return str(result)

    def _with_order(self, order_id: str, decide: Callable[[Order], T | None]) -> tuple[Order, T] | None:
        """Decide on the latest order and save; on a conflict (a callback or another worker got in first)
        reload and decide again. None when there is no such order, or the decision was to do nothing."""
        saved = save_with_retries(self.store, UUID(order_id), decide)
        if saved is None or saved.decision is None:
            return None
        return saved.order, saved.decision


def payload(order: Order, change: str) -> dict[str, Any]:
    """What the merchant's system is told: the change, and the order as it stands now."""
    paid = order.payment or {}
    body: dict[str, Any] = {
        "change": change.split(":")[0], "idempotency_key": f"{order.id}:{change}",
        "app_id": order.app_id, "out_trade_no": order.out_trade_no, "trade_no": paid.get("trade_no"),
        "status": order.status.value, "total_amount": paid.get("total_amount"),
        "refunded_amount": order.refunded, "order_version": order.version,
    }
    if order.merchant:  # a service provider's merchant (ISV): its orders' numbers are its own
        body["auth_app_id"] = order.merchant
    if change.startswith("refund:"):
        key = change.split(":", 1)[1]
        body["refund"] = {"out_biz_no": key, "refund_fee": order.refunds.get(key)}
    if change == "closed":
        body["close_reason"] = order.close_reason
    return body
