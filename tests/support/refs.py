"""Unique references per test, so tests sharing a server (or a Redis key prefix) never meet on one order."""

from __future__ import annotations

import uuid


def ref(prefix: str = "T") -> str:
    """A fresh out_trade_no: `prefix` and 12 random hex digits, upper case (within Alipay's 64 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"
