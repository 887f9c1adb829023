"""`ledger reconcile`: Alipay's trade bill, kept as evidence: `fetch --date D` asks the gateway for the day's bill
and imports it; `import FILE` imports one downloaded by hand (the zip as Alipay gives it, or its detail CSV)."""

from __future__ import annotations

import argparse
import os
from datetime import date, datetime, timedelta
from pathlib import Path

from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.cli.common import Commands, Formatter, check_database
from ledger.config import Settings, SettingsError


def add_commands(commands: Commands, common: argparse.ArgumentParser, formatter: Formatter) -> None:
    reconcile = commands.add_parser("reconcile", parents=[common], formatter_class=formatter,
                                    help="Alipay's daily trade bill: fetch or import one as evidence")
    reconcile.add_argument("action", choices=["fetch", "import"],
                           help="fetch: ask the gateway for a day's bill and import it; import: read, check and keep "
                                "a bill file (its bytes kept by their SHA-256)")
    reconcile.add_argument("file", type=Path, nargs="?", help="with import: the zip as Alipay gives it, or its "
                                                              "业务明细 CSV")
    reconcile.add_argument("--date", type=date.fromisoformat, help="with fetch: the day (YYYY-MM-DD, China Standard "
                                                                   "Time); yesterday's by default")
    reconcile.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID") or None,
                           help="the bill's Alipay app (from LEDGER_ALIPAY_APP_ID if set)")
    reconcile.add_argument("--who", default=os.environ.get("USER", "finance"), help="who imports, as recorded")
    reconcile.set_defaults(run=_reconcile)


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import build

    settings.require_apps()
    check_database(settings)
    data = b""
    if args.action == "import":
        if args.file is None:
            raise SettingsError("ledger reconcile import needs the bill's FILE")
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise SettingsError(f"cannot read {args.file}: {exc.strerror}") from None
    ledger = build(settings)
    try:
        assert ledger.bills is not None  # built with every ledger
        who = f"{args.who} via CLI"
        if args.action == "fetch":
            day = args.date or (datetime.now(CHINA_STANDARD_TIME) - timedelta(days=1)).date()
            done = ledger.bills.fetch(day, who=who, app_id=args.app_id)
        else:
            done = ledger.bills.import_bill(data, source=f"file {args.file.name}", who=who, app_id=args.app_id)
    finally:
        ledger.close()
    bill = done.bill
    what = "imported" if done.newly else "already imported (nothing new recorded)"
    print(f"{what}: bill {done.bill_id} of app {bill.app_id}, account {bill.account}, day {bill.bill_date}, "
          f"sha256 {done.sha256}, {bill.size} bytes")
    print(f"  {bill.payments} payments, {bill.refunds} refunds; 订单金额 {bill.total_amount}, 商家实收 "
          f"{bill.receipt_amount}, 服务费 {bill.fee}, 分润 {bill.share}, 实收净额 {bill.net}")
    return 0

