"""Orders with long streams, made the way Alipay makes them: one signed notification after another."""

from __future__ import annotations

import uuid

from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from tests.support.alipay import SandboxAlipay


def long_stream(ledger: Ledger, alipay: SandboxAlipay, out_trade_no: str, *, events: int) -> None:
    """Give the order exactly `events` events (at least 3): its payment (Opened, CallbackReceived,
    PaymentConfirmed), then as many more deliveries, each with its own notify_id, as Alipay sends on retry."""
    if events < 3:
        raise ValueError("a paid order has at least 3 events")
    for _ in range(events - 2):
        body = alipay.body(out_trade_no, notify_id=uuid.uuid4().hex)
        ledger.service.record_callback(RecordCallback(body=body, remote_addr="203.0.113.9"))
