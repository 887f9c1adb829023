"""How many gateway calls a day the query schedule makes per 10,000 registered orders.

A model, run with the ledger's own schedule code (ledger.domain.trade_query.due_at and the default
LEDGER_QUERY_SCHEDULE): an order is asked about at each step due before its payment's notification is
recorded, while it is still pending; the first step after the buyer paid finds it paid and confirms it, so
no later step asks. Each scenario says when buyers pay after registration and when Alipay's notification
arrives after the payment.

    python bench/query_calls.py [--orders 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ledger.config import DEFAULT_QUERY_SCHEDULE
from ledger.domain.trade_query import due_at

START = datetime(2026, 12, 1, tzinfo=UTC)


def calls(pay_after: float | None, notified_after: float | None, order_id: uuid.UUID) -> int:
    """Queries made for one order: `pay_after` seconds from registration to payment (None: never paid),
    `notified_after` seconds from payment to its notification being recorded (None: never)."""
    made = 0
    for step in range(len(DEFAULT_QUERY_SCHEDULE)):
        due = due_at(START, DEFAULT_QUERY_SCHEDULE, step, order_id)
        assert due is not None
        at = (due - START).total_seconds()
        if pay_after is not None and notified_after is not None and pay_after + notified_after <= at:
            return made  # the notification came first: the order is no longer pending
        made += 1
        if pay_after is not None and pay_after <= at:
            return made  # this answer says paid: the order is confirmed, no later step
    return made


def typical(rng: random.Random) -> tuple[float | None, float | None]:
    """Buyers pay within a minute mostly, a few take longer; Alipay's first notification arrives in a second
    or two, and 1 in 1,000 is lost until Alipay's retry after 4 m, 10 m..."""
    share = rng.random()
    pay = rng.uniform(5, 60) if share < 0.80 else rng.uniform(60, 240) if share < 0.96 else rng.uniform(240, 900)
    late = rng.random() < 0.001
    return pay, rng.choice([240.0, 840.0, 1440.0]) if late else rng.uniform(0.5, 3)


def instant(rng: random.Random) -> tuple[float | None, float | None]:
    """Registration at the moment of payment (a merchant that registers after the buyer scanned)."""
    return rng.uniform(0, 5), rng.uniform(0.5, 3)


def notify_url_down(rng: random.Random) -> tuple[float | None, float | None]:
    """The notify URL unreachable all day: nothing but the queries finds the payments."""
    pay, _ = typical(rng)
    return pay, None


def abandoned(rng: random.Random) -> tuple[float | None, float | None]:
    """Checkouts never paid: every step asks."""
    return None, None


SCENARIOS: dict[str, Callable[[random.Random], tuple[float | None, float | None]]] = {
    "paid, typical (80 % pay within 1 m, 16 % in 1-4 m, 4 % in 4-15 m; 0.1 % of first notifications lost)": typical,
    "paid, registered as the buyer pays": instant,
    "paid, notify URL down all day": notify_url_down,
    "never paid (abandoned checkout)": abandoned,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    schedule = ",".join(f"{s / 60:g}m" if s < 3600 else f"{s / 3600:g}h" for s in DEFAULT_QUERY_SCHEDULE)
    print(f"schedule {schedule}; {args.orders} orders registered in a day")
    for name, scenario in SCENARIOS.items():
        rng = random.Random(args.seed)
        total = sum(calls(*scenario(rng), uuid.UUID(int=rng.getrandbits(128))) for _ in range(args.orders))
        print(f"{total:>7} gateway calls  {name}")
    print("\nspread: first steps of 10,000 orders registered in the same second fall over "
          f"{max_spread(args.orders):.0f} s")


def max_spread(orders: int) -> float:
    dues = [due_at(START, DEFAULT_QUERY_SCHEDULE, 0, uuid.uuid4()) for _ in range(orders)]
    return (max(d for d in dues if d) - min(d for d in dues if d)) / timedelta(seconds=1)


if __name__ == "__main__":
    main()
