"""Delivery of an order's changes to the merchant's system: the state of each change's delivery.

A change is named by what it is (`payment`, `refund:<out_biz_no>`, `finished`, `closed`), so the
idempotency key `<order_id>:<change>` is the same however often it is sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

PENDING, IN_FLIGHT, FAILED, RETRY_REQUESTED = "pending", "in_flight", "failed", "retry_requested"
SUCCEEDED, ABANDONED, RESOLVED = "succeeded", "abandoned", "resolved"
# The read model's state of a change when no downstream URL is configured: nothing waits to send it, so it is
# not pending (configured later, the sweep sends what is there).
NO_DOWNSTREAM = "no_downstream"
FINAL = frozenset({SUCCEEDED, ABANDONED, RESOLVED})
# A delayed message may arrive a little before its time when hosts' clocks differ.
CLOCK_SLACK = timedelta(seconds=1)


class RetryPolicy(Protocol):
    @property
    def max_retries(self) -> int: ...

    def delay(self, retry: int) -> float:
        """Seconds before retry number `retry` (1 for the first retry)."""
        ...


def new_entry(change: str) -> dict[str, Any]:
    return {"change": change, "state": PENDING, "attempts": 0, "round_start": 0, "next_retry_at": None,
            "started_at": None, "last_error": ""}


def is_due(entry: dict[str, Any], now: datetime, lease: timedelta) -> bool:
    """Whether a delivery should start now: not final, not in flight under a live lease, not early."""
    state = entry["state"]
    if state in FINAL:
        return False
    if state == IN_FLIGHT:
        # A worker killed mid-delivery leaves its attempt in flight: after the lease it counts as lost.
        return bool(entry["started_at"] + lease <= now)
    if state == FAILED:
        return bool(entry["next_retry_at"] <= now + CLOCK_SLACK)
    return True


def exhausted(entry: dict[str, Any], attempt: int, policy: RetryPolicy) -> bool:
    """Whether attempt number `attempt` was the last the policy allows: after it fails, the delivery is abandoned
    (the manual queue). An operator's retry starts a new round of as many."""
    return attempt - int(entry["round_start"]) >= 1 + policy.max_retries


def abandoned(entries: dict[str, dict[str, Any]]) -> list[str]:
    """An order's changes in the manual queue: abandoned, waiting for an operator to retry or resolve them."""
    return [change for change, entry in entries.items() if entry["state"] == ABANDONED]


def change_of(kind: str, event: Any) -> str | None:
    """The change a state-change event makes, or None for events that are not delivered."""
    if kind == "PaymentConfirmed":
        return "payment"
    if kind == "RefundRecorded":
        return f"refund:{event.refund_key}"
    if kind == "TradeFinished":
        return "finished"
    if kind == "TradeClosed":
        return "closed"
    return None
