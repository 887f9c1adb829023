"""Time and memory to import a trade bill of N rows (issue 15: read and checked whole, bytes kept, BillImported),
on a fresh SQLite file or PostgreSQL database. The matching is not built yet: its time is not measured here.

    python bench/bill_import.py [--rows 100000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from ledger.adapters.sql.migrations import migrate
from ledger.alipay.bill import read_bill
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox import generate_key_pair
from ledger.alipay.sandbox_bill import BillTrade, bill_zip
from ledger.bootstrap import build
from ledger.config import Settings

AT = datetime(2019, 9, 16, 0, 0, 1, tzinfo=CHINA_STANDARD_TIME)  # the sandbox bill's day


def trades(rows: int) -> list[BillTrade]:
    made = []
    for n in range(rows):
        amount, at = Decimal(100 + n % 9000) / 100, AT + timedelta(seconds=n % 86_000)
        if n % 10 == 9:  # a refund of the payment before it, one row in ten
            made.append(BillTrade("refund", f"B-{n - 1}", f"2019091622{n - 1:018d}", amount / 2,
                                  at, fee=Decimal("0.01"), refund_request_no=f"RF-{n}"))
        else:
            made.append(BillTrade("payment", f"B-{n}", f"2019091622{n:018d}", amount, at,
                                  fee=(amount * Decimal("0.006")).quantize(Decimal("0.01"))))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", help="a server URL: a database of its own is made there and dropped")
    args = parser.parse_args()
    started = time.perf_counter()
    data = bill_zip(trades(args.rows))
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
            ledger = build(Settings.from_env({"LEDGER_DATABASE_URL": url, "LEDGER_ALIPAY_APP_ID": "2021000000000001",
                                              "LEDGER_ALIPAY_PUBLIC_KEY": public}))
            try:
                assert ledger.bills is not None
                started = time.perf_counter()
                done = ledger.bills.import_bill(data, source="bench", who="bench")
                imported_s = time.perf_counter() - started
                started = time.perf_counter()
                again = ledger.bills.import_bill(data, source="bench", who="bench")
                again_s = time.perf_counter() - started
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
          f"{again_s * 1000:.0f} ms (recognised by its hash, not read); process peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
