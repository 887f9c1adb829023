"""Streams the read side must park: an order no projection can apply, and running the projections until parked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order
from projections.runner import MAX_TRIES
from tests.support.alipay import APP_ID
from tests.support.notices import notification


def legacy_order(ledger: Ledger, out_trade_no: str) -> str:
    """An order whose payment time no projection can store (year 1 in China Standard Time is before the UTC
    year 1): recorded as code without today's limits did, straight into the store."""
    params = notification(out_trade_no, gmt_payment="2026-11-21 10:00:00")
    notice = TradeNotice.from_params(params)
    order = Order(app_id=APP_ID, out_trade_no=out_trade_no)
    order.receive(notice.__class__(**{**vars(notice), "gmt_payment": "0001-01-01 00:00:00"}), params,
                  delivery_id=uuid.uuid4().hex, received_at=datetime.now(UTC), remote_addr="127.0.0.1")
    ledger.store.save(order)
    return str(order.id)


def run_until_parked(ledger: Ledger) -> None:
    """As the follower does: a failing step is tried again, MAX_TRIES times, then its stream is parked."""
    assert ledger.runner is not None
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(Exception):  # noqa: B017  (whatever the database says of the poison)
            ledger.runner.step()
    ledger.runner.catch_up()
