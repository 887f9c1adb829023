"""`ledger reconcile`: Alipay's trade bill, kept as evidence and matched with the ledger: `fetch --date D` asks the
gateway for the day's bill, `import FILE` takes one downloaded by hand (each then matches its day); `match --date D`
matches a day again, `report --date D` prints it, `resolve FINDING_ID --note TEXT` settles a finding by hand."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.cli.common import Commands, Formatter, check_database
from ledger.config import Settings, SettingsError
from ledger.domain.errors import InvalidRequest, StorageUnavailable
from ledger.domain.limits import check_note

if TYPE_CHECKING:
    from ledger.bootstrap import Ledger

ACTIONS = ("fetch", "import", "match", "report", "resolve")


def add_commands(commands: Commands, common: argparse.ArgumentParser, formatter: Formatter) -> None:
    reconcile = commands.add_parser("reconcile", parents=[common], formatter_class=formatter,
                                    help="Alipay's daily trade bill: fetch or import one, match a day, report it, "
                                         "resolve a finding")
    reconcile.add_argument("action", choices=ACTIONS,
                           help="fetch: ask the gateway for a day's bill, import and match it; import: read, check "
                                "and keep a bill file (its bytes kept by their SHA-256), then match its day; match: "
                                "match a day's bill again; report: print a day's totals and open findings; resolve: "
                                "settle a finding by hand")
    reconcile.add_argument("argument", nargs="?", metavar="FILE | FINDING_ID",
                           help="with import: the zip as Alipay gives it, or its 业务明细 CSV; with resolve: the "
                                "finding's id (as report prints it)")
    reconcile.add_argument("--date", type=date.fromisoformat, help="the day (YYYY-MM-DD, China Standard Time); "
                                                                   "yesterday's by default")
    reconcile.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID") or None,
                           help="the bill's Alipay app (from LEDGER_ALIPAY_APP_ID if set)")
    reconcile.add_argument("--note", help="with resolve: why the finding is settled (required)")
    reconcile.add_argument("--who", default=os.environ.get("USER", "finance"), help="who acts, as recorded")
    reconcile.set_defaults(run=_reconcile)


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import build
    from ledger.cli.reconcile_report import print_day, print_run

    settings.require_apps()
    check_database(settings)
    data = _file(args) if args.action == "import" else b""  # read before anything is built
    finding_id = _finding_id(args) if args.action == "resolve" else None
    ledger = build(settings)
    try:
        who = f"{args.who} via CLI"
        day = args.date or (datetime.now(CHINA_STANDARD_TIME) - timedelta(days=1)).date()
        if args.action in ("fetch", "import"):
            return _take_bill(args, ledger, data, day, who)
        reconcile = ledger.reconcile
        if reconcile is None or ledger.engine is None or ledger.runner is None:
            raise SettingsError("reconciliation needs a database's read model, not the memory store")
        if args.action == "report":
            # The read model as of now, so the report shows a match this or another shell just recorded.
            ledger.runner.catch_up(tables_only=True)
            print_day(ledger.engine, day, app_id=args.app_id)
        elif args.action == "match":
            print_run(reconcile.match_day(day, who=who, app_id=args.app_id))
            _read_model_now(ledger)
        else:
            assert finding_id is not None
            try:
                finding = reconcile.resolve(finding_id, who=who, note=check_note(args.note or ""))
            except LookupError as exc:
                print(f"ledger: {exc}", file=sys.stderr)
                return 1
            print(f"finding {finding.id} ({finding.kind} of {finding.out_trade_no}, {finding.day}) is {finding.state}")
        return 0
    finally:
        ledger.close()


def _take_bill(args: argparse.Namespace, ledger: Ledger, data: bytes, day: date, who: str) -> int:
    """Fetch or import the bill, then match its day: the import stands whatever becomes of the match."""
    from ledger.cli.reconcile_report import print_import, print_run

    assert ledger.bills is not None  # built with every ledger
    if args.action == "fetch":
        done = ledger.bills.fetch(day, who=who, app_id=args.app_id)
    else:
        done = ledger.bills.import_bill(data, source=f"file {Path(args.argument).name}", who=who, app_id=args.app_id)
    print_import(done)
    if ledger.reconcile is None:
        print("  not matched: this ledger keeps no read model (the memory store)")
        return 0
    try:
        print_run(ledger.reconcile.match_bill(done.bill, who=who))
        _read_model_now(ledger)
    except StorageUnavailable as exc:
        print(f"ledger: imported, not matched: {exc}; then `ledger reconcile match --date {done.bill.bill_date}`",
              file=sys.stderr)
        return 1
    return 0


def _read_model_now(ledger: Ledger) -> None:
    """The run in the read model's tables before the command ends, so that the API of a server reading them (it
    would follow the log within a second or so) and the shell's next command see it at once."""
    if ledger.runner is not None:
        ledger.runner.catch_up(tables_only=True)


def _file(args: argparse.Namespace) -> bytes:
    if args.argument is None:
        raise SettingsError("ledger reconcile import needs the bill's FILE")
    try:
        return Path(args.argument).read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read {args.argument}: {exc.strerror}") from None


def _finding_id(args: argparse.Namespace) -> UUID:
    if args.argument is None:
        raise SettingsError("ledger reconcile resolve needs the FINDING_ID (as `ledger reconcile report` prints it)")
    try:
        return UUID(args.argument)
    except ValueError:
        raise InvalidRequest(f"{args.argument!r} is not a finding's id (a UUID, as report prints it)") from None
