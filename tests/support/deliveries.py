"""Deliveries to the merchant in tests: their idempotency key, and the settings that make the jobs quick."""

from __future__ import annotations

from ledger.domain.order import Order
from tests.support.alipay import APP_ID
from tests.support.merchant import SECRET, FakeMerchant
from tests.support.robots import ROBOT_SECRET, FakeDingTalk


def key_of(out_trade_no: str, change: str = "payment") -> str:
    """The idempotency key the merchant sees for this order's delivery of `change`."""
    return f"{Order.create_id(APP_ID, out_trade_no)}:{change}"


def job_env(merchant: FakeMerchant, robot: FakeDingTalk, **extra: str) -> dict[str, str]:
    """LEDGER_* settings delivering to `merchant` and alerting `robot`, with retries, sweeps and leases in
    fractions of a second rather than minutes."""
    return {"LEDGER_DOWNSTREAM_URL": merchant.url, "LEDGER_DOWNSTREAM_SECRET": SECRET,
            "LEDGER_RETRY_BASE_SECONDS": "0.3", "LEDGER_RETRY_CAP_SECONDS": "5", "LEDGER_SWEEP_SECONDS": "0.5",
            "LEDGER_DELIVERY_LEASE_SECONDS": "3", "LEDGER_ALERT_DINGTALK_URL": robot.url,
            "LEDGER_ALERT_DINGTALK_SECRET": ROBOT_SECRET, **extra}
