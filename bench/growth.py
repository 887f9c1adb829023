#!/usr/bin/env python3
"""How the ledger's costs grow with the work (not a test: a developer runs it, on PostgreSQL).

1. Append latency as the event table grows: the table is filled to 10^4, 10^5 and 10^6 events (orders of
   three events each, written many to a transaction), and at each size 300 single-order appends of a paid
   notification are timed, one transaction each, as the intake makes them.
2. Load time of one order with 1, 10 and 100 recorded callbacks (repository.get, no cache).

  .venv/bin/python bench/growth.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--max 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order

NOW = datetime.now(UTC)


def params(out_trade_no: str) -> dict[str, str]:
    return {"app_id": "2021000000000001", "charset": "utf-8", "notify_id": uuid.uuid4().hex,
            "notify_time": "2026-11-21 10:00:00", "notify_type": "trade_status_sync", "version": "1.0",
            "out_trade_no": out_trade_no, "trade_no": f"2026{out_trade_no}", "trade_status": "TRADE_SUCCESS",
            "total_amount": "88.00", "receipt_amount": "88.00", "buyer_pay_amount": "88.00",
            "gmt_payment": "2026-11-21 09:59:59", "buyer_id": "2088000000000002", "seller_id": "2088000000000001",
            "subject": "growth", "sign_type": "RSA2", "sign": "x" * 344}


def paid_order(out_trade_no: str, callbacks: int = 1) -> Order:
    order = Order(app_id="2021000000000001", out_trade_no=out_trade_no)
    p = params(out_trade_no)
    for _ in range(callbacks):
        order.receive(TradeNotice.from_params(p), p, delivery_id=uuid.uuid4().hex, received_at=NOW, remote_addr="")
    return order


def fresh_database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return urlunsplit(urlsplit(admin)._replace(path="/" + name))


def fill(store: LedgerStore, events: int, prefix: str) -> None:
    for start in range(0, events // 3, 1000):  # a thousand orders a transaction, built as they go
        store.save(*(paid_order(f"{prefix}{n}") for n in range(start, min(start + 1000, events // 3))))


def timed_appends(store: LedgerStore, count: int, prefix: str) -> list[float]:
    times = []
    for n in range(count):
        order = paid_order(f"{prefix}{n}")
        started = time.perf_counter()
        store.save(order)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--max", type=int, default=1_000_000)
    args = ap.parse_args()
    url = fresh_database(args.postgres, "ledger_growth_bench")
    store = LedgerStore(env=persistence_env(url, create_table=True, pool_size=2, max_overflow=2))
    try:
        print(f"{'events in table':>16} {'append p50 ms':>14} {'append p99 ms':>14}")
        size = 0
        for target in (10_000, 100_000, 1_000_000):
            if target > args.max:
                break
            fill(store, target - size, prefix=f"F{target}-")
            size = store.ping()
            times = timed_appends(store, 300, prefix=f"A{target}-")
            print(f"{size:>16} {statistics.median(times):>14.2f} {statistics.quantiles(times, n=100)[98]:>14.2f}")
        print(f"\n{'callbacks':>10} {'events':>7} {'load p50 ms':>12} {'load p99 ms':>12}")
        for callbacks in (1, 10, 100):
            order = paid_order(f"L{callbacks}", callbacks)
            store.save(order)
            times = []
            for _ in range(200):
                started = time.perf_counter()
                store.repository.get(order.id)
                times.append((time.perf_counter() - started) * 1000)
            print(f"{callbacks:>10} {order.version:>7} {statistics.median(times):>12.2f} "
                  f"{statistics.quantiles(times, n=100)[98]:>12.2f}")
    finally:
        store.close()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute('drop database if exists "ledger_growth_bench" with (force)')


if __name__ == "__main__":
    main()
