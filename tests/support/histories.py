"""Generated trade histories: many orders, each with a plausible sequence of notifications, shuffled and
duplicated the way Alipay's retries arrive, fed through the real intake; and the read model they leave,
table by table, to compare a rebuild with the incremental run."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ledger.bootstrap import Ledger
from ledger.domain.errors import LedgerError
from ledger.service.application import RecordCallback, RegisterOrder
from projections.tables import PROJECTED
from tests.support.alipay import APP_ID, SandboxAlipay


def trade(rng: random.Random, alipay: SandboxAlipay, order: str) -> list[bytes]:
    total = Decimal(rng.randint(100, 50_000)) / 100
    amount = f"{total:.2f}"
    day = f"2026-11-{rng.randint(1, 28):02d}"
    # Around midnight China time, so that the CST day and the UTC day differ.
    paid_at = f"{day} {rng.choice(['00:10:00', '07:59:59', '08:00:01', '23:59:59'])}"
    if rng.random() < 0.2:
        return [alipay.body(order, trade_status="TRADE_CLOSED", total_amount=amount)]
    bodies = [alipay.body(order, total_amount=amount, gmt_payment=paid_at)]
    refunded = 0
    for i in range(rng.randint(0, 2)):
        refunded = rng.randint(refunded + 1, int(total * 100) - 1) if refunded + 1 < total * 100 - 1 else refunded
        bodies.append(alipay.body(order, total_amount=amount, gmt_payment=paid_at, refund_fee=f"{refunded / 100:.2f}",
                                  out_biz_no=f"{order}-R{i}", gmt_refund=f"{day} 12:00:00.5"))
    ending = rng.choice(["open", "finished", "refunded"])
    if ending == "finished":
        bodies.append(alipay.body(order, trade_status="TRADE_FINISHED", total_amount=amount, gmt_payment=paid_at))
    elif ending == "refunded":
        bodies.append(alipay.body(order, trade_status="TRADE_CLOSED", total_amount=amount, gmt_payment=paid_at,
                                  refund_fee=amount, out_biz_no=f"{order}-RF", gmt_refund=f"{day} 13:00:00"))
    return bodies


def feed_history(ledger: Ledger, alipay: SandboxAlipay, *, orders: int, seed: int) -> int:
    """Record a shuffled, duplicated history of `orders` trades; some registered, one with a wrong amount."""
    rng = random.Random(seed)
    deliveries: list[bytes] = []
    for n in range(orders):
        order = f"H{seed}-{n}"
        if rng.random() < 0.5:
            amount = Decimal("1.00") if n == 0 else None  # order 0 registered with a mismatching amount
            if amount is not None:
                ledger.service.register_order(RegisterOrder(APP_ID, order, amount))
        bodies = trade(rng, alipay, order)
        deliveries += bodies + rng.sample(bodies, k=min(len(bodies), rng.randint(0, 2)))
    rng.shuffle(deliveries)
    for body in deliveries:
        try:
            ledger.service.record_callback(RecordCallback(body=body, remote_addr="203.0.113.9"))
        except LedgerError:
            raise
    return len(deliveries)


def snapshot(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every projected table's rows, in primary-key order."""
    with engine.connect() as conn:
        return {name: [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for name, t in PROJECTED.items()}
