"""An alert for operators: one stream per (kind, key, time window).

The id is derived from the three, so raising the same alert again within its window finds the stream
already there: deduplication comes from the event store's version check, across every process.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

ALERT_NAMESPACE = UUID("0b6f3a52-61d8-5d3e-8f0e-6a1c2b7d9e40")
KINDS = frozenset({"delivery_abandoned", "amount_mismatch", "unknown_order", "signature_failures",
                   "redis_degraded", "projection_stalled", "projection_parked", "unbookable_notification",
                   "anomaly", "certificate_expiring", "trade_query_failed", "queries_exhausted",
                   "bill_unavailable", "bill_inconsistent", "findings_open"})


class Alert(Aggregate):
    @staticmethod
    def create_id(kind: str, key: str, window: int) -> UUID:
        return uuid5(ALERT_NAMESPACE, f"alert/{kind}/{key}/{window}")

    @event("AlertRaised")
    def __init__(self, kind: str, key: str, window: int, message: str, raised_at: datetime) -> None:
        self.kind, self.key, self.message, self.raised_at = kind, key, message, raised_at
        self.sent_to: list[str] = []

    def mark_sent(self, channel: str) -> None:
        if channel not in self.sent_to:
            self._sent(channel=channel)

    @event("AlertSent")
    def _sent(self, channel: str) -> None:
        self.sent_to.append(channel)
