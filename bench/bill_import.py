"""Time and memory to import a trade bill of N rows (issue 15: read and checked whole, bytes kept, BillImported)
and to match it with the ledger (ReconcileService.match_day, then a rerun), on a fresh SQLite file or PostgreSQL
database. The ledger is seeded with the bill's trades first, as orders told by their notifications but saved a
thousand to a transaction (seeding is not what is measured), all but `--unbooked` payments it never heard of.

    python bench/bill_import.py [--rows 100000] [--unbooked 100] [--neighbours]
                                [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

import psycopg

from ledger.adapters.sql.migrations import migrate
from ledger.alipay.bill import read_bill
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox import generate_key_pair, trade_notification
from ledger.alipay.sandbox_bill import DAY, BillTrade, bill_zip
from ledger.bootstrap import Ledger, build
from ledger.config import Settings
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order

APP_ID = "2021000000000001"
TIME = "%Y-%m-%d %H:%M:%S"
CENT = Decimal("0.01")


def trades(rows: int, day: date = DAY, prefix: str = "B") -> list[BillTrade]:
    made, start = [], datetime.combine(day, dtime(0, 0, 1), CHINA_STANDARD_TIME)
    for n in range(rows):
        amount, at = Decimal(100 + n % 9000) / 100, start + timedelta(seconds=n % 86_000)
        if n % 10 == 9:  # a refund of the payment before it, one row in ten
            made.append(BillTrade("refund", f"{prefix}-{n - 1}", f"{day:%Y%m%d}22{n - 1:018d}",
                                  (amount / 2).quantize(CENT), at, fee=Decimal("0.01"), refund_request_no=f"RF-{n}"))
        else:
            made.append(BillTrade("payment", f"{prefix}-{n}", f"{day:%Y%m%d}22{n:018d}", amount, at,
                                  fee=(amount * Decimal("0.006")).quantize(CENT)))
    return made


def seed(ledger: Ledger, made: list[BillTrade], unbooked: int) -> int:
    """Save an order per payment (and its refund) as its notifications would have, a thousand to a commit, but
    `unbooked` payments spread over the day (payments the ledger never heard of, and their refunds). Returns the
    payments left out."""
    every = max(1, sum(t.kind == "payment" for t in made) // unbooked) if unbooked else 0
    payments = 0
    orders: dict[str, Order] = {}
    paid: dict[str, str] = {}
    left_out = 0
    now = datetime.now(CHINA_STANDARD_TIME)
    for trade in made:
        if trade.kind == "payment":
            payments += 1
            if every and payments % every == 0 and left_out < unbooked:
                left_out += 1
                continue
            when = trade.finished_at.strftime(TIME)
            params = trade_notification(APP_ID, trade.out_trade_no, trade_no=trade.trade_no,
                                        total_amount=str(trade.amount), gmt_payment=when)
            paid[trade.out_trade_no] = str(trade.amount)
            order = orders[trade.out_trade_no] = Order(app_id=APP_ID, out_trade_no=trade.out_trade_no)
        elif trade.out_trade_no in orders:
            params = trade_notification(APP_ID, trade.out_trade_no, trade_no=trade.trade_no,
                                        total_amount=paid[trade.out_trade_no], refund_fee=str(trade.amount),
                                        out_biz_no=trade.refund_request_no, gmt_refund=trade.finished_at.strftime(TIME),
                                        gmt_payment=trade.finished_at.strftime(TIME))
            order = orders[trade.out_trade_no]
        else:
            continue
        order.receive(TradeNotice.from_params(params), params, delivery_id=uuid.uuid4().hex, received_at=now,
                      remote_addr="198.51.100.7")
        if len(orders) >= 1000 and trade.kind == "refund":  # a refund follows its payment: none is pending
            ledger.store.save(*orders.values())
            orders.clear()
    if orders:
        ledger.store.save(*orders.values())
    return left_out


def timed_match(ledger: Ledger, *, traced: bool = False) -> tuple[float, float, float, dict[str, int]]:
    """(seconds matching, peak MiB allocated while matching or 0 when not traced, seconds for the read model to
    catch up with the run afterwards (the journal lines of the fees posted), the run's counts)."""
    assert ledger.reconcile is not None and ledger.runner is not None
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    run = ledger.reconcile.match_day(DAY, who="bench")
    took = time.perf_counter() - started
    peak = 0.0
    if traced:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    started = time.perf_counter()
    ledger.runner.catch_up()
    return took, peak, time.perf_counter() - started, run.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--unbooked", type=int, default=100, help="bill payments the ledger never heard of")
    parser.add_argument("--neighbours", action="store_true",
                        help="import bills of `--rows` other trades for the days either side too (a run reads them)")
    parser.add_argument("--postgres", help="a server URL: a database of its own is made there and dropped")
    args = parser.parse_args()
    started = time.perf_counter()
    made = trades(args.rows)
    data = bill_zip(made)
    print(f"generated {args.rows} rows: {len(data) / 2**20:.1f} MiB zipped in {time.perf_counter() - started:.1f} s")

    tracemalloc.start()
    started = time.perf_counter()
    bill = read_bill(data)
    read_s, (_, read_peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"read and checked: {len(bill.rows)} rows, peak {read_peak / 2**20:.0f} MiB allocated while reading "
          f"({read_s:.2f} s under tracemalloc, which slows it: the import below reads it again, untraced)")

    with tempfile.TemporaryDirectory() as folder:
        name, url = "", f"sqlite:///{Path(folder) / 'ledger.db'}"
        if args.postgres:
            name = f"bench_bills_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
        try:
            migrate(url)
            _, public = generate_key_pair()
            ledger = build(Settings.from_env({"LEDGER_DATABASE_URL": url, "LEDGER_ALIPAY_APP_ID": APP_ID,
                                              "LEDGER_ALIPAY_PUBLIC_KEY": public}))
            try:
                assert ledger.bills is not None
                started = time.perf_counter()
                done = ledger.bills.import_bill(data, source="bench", who="bench")
                imported_s = time.perf_counter() - started
                started = time.perf_counter()
                again = ledger.bills.import_bill(data, source="bench", who="bench")
                again_s = time.perf_counter() - started
                started = time.perf_counter()
                left_out = seed(ledger, made, args.unbooked)
                assert ledger.runner is not None
                ledger.runner.catch_up()
                print(f"seeded the ledger with the bill's trades but {left_out} payments (and their refunds) in "
                      f"{time.perf_counter() - started:.0f} s, read model caught up")
                if args.neighbours:
                    for day, prefix in ((DAY - timedelta(days=1), "P"), (DAY + timedelta(days=1), "N")):
                        ledger.bills.import_bill(bill_zip(trades(args.rows, day, prefix), day=day), source="bench",
                                                 who="bench")
                    ledger.runner.catch_up()
                match_s, _, fees_s, counts = timed_match(ledger)
                rerun_s, _, _, again_counts = timed_match(ledger)
                traced_s, match_peak, _, _ = timed_match(ledger, traced=True)
                assert again_counts == counts, (counts, again_counts)
            finally:
                ledger.close()
        finally:
            if name:
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert done.newly and not again.newly
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"imported on {backend} (read, bytes kept, BillImported) in {imported_s:.2f} s; the same file again in "
          f"{again_s * 1000:.0f} ms (recognised by its hash, not read)")
    found = ", ".join(f"{kind} {n}" for kind, n in counts.items() if n)
    print(f"matched the day on {backend} in {match_s:.2f} s ({found}"
          f"{'; the bills of the days either side imported' if args.neighbours else ''}); the read model caught up "
          f"with it (fees into the journal) in {fees_s:.2f} s; a rerun in {rerun_s:.2f} s; peak {match_peak:.0f} MiB "
          f"allocated while matching (a third run, {traced_s:.1f} s under tracemalloc); process peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
