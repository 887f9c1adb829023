"""Driving a built ledger from a test: a callback recorded as Alipay posts it, and an order's history read back."""

from __future__ import annotations

from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from ledger.service.ports import Recorded
from tests.support.alipay import APP_ID


def kinds(ledger: Ledger, out_trade_no: str) -> list[str]:
    """The names of the order's events, oldest first (e.g. ["Opened", "CallbackReceived", ...])."""
    return [type(e).__name__ for e in ledger.service.history(APP_ID, out_trade_no)]


def record(ledger: Ledger, body: bytes) -> Recorded:
    """Record a signed notification body as the HTTP endpoint would (from a fixed sender's address)."""
    return ledger.service.record_callback(RecordCallback(body=body, remote_addr="198.51.100.7"))
