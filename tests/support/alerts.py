"""Waiting for alerts handed to the alert thread (AlertService.later) to be in the event store."""

from __future__ import annotations

import time

from ledger.bootstrap import Ledger


def wait_until_recorded(ledger: Ledger, seconds: float = 30.0) -> None:
    """Until every alert handed to the alert thread is in the event store (the pool reconnects with backoff)."""
    assert ledger.alerting is not None
    deadline = time.monotonic() + seconds
    while ledger.alerting.later.pending:
        assert time.monotonic() < deadline, "the alert was not recorded in time"
        time.sleep(0.05)
