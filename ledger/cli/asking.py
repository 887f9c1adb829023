"""Asking Alipay from a shell: `ledger query` (a trade query now, recorded and applied) and `ledger doctor`
(the configuration proved before money moves)."""

from __future__ import annotations

import argparse
import json
import os

from ledger.cli.common import Commands, Formatter, check_database
from ledger.config import Settings


def add_commands(commands: Commands, common: argparse.ArgumentParser, formatter: Formatter) -> None:
    query = commands.add_parser("query", parents=[common], formatter_class=formatter,
                                help="ask Alipay about an order's trade now (alipay.trade.query): the answer is "
                                     "recorded in its history and applied as a notification would be")
    query.add_argument("out_trade_no", help="the merchant's order number")
    query.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID", ""),
                       help="the order's Alipay app (from LEDGER_ALIPAY_APP_ID if set)")
    query.add_argument("--auth-app-id", default="", help="a service provider's merchant (ISV mode)")
    query.add_argument("--who", default=os.environ.get("USER", "operator"), help="who asks, as recorded")
    query.set_defaults(run=_query)
    doctor = commands.add_parser("doctor", parents=[common], formatter_class=formatter,
                                 help="prove the configuration before money moves: each app's keys, the gateway "
                                      "accepting the app's signature and Alipay's answer verifying, the clock, "
                                      "the database, Redis and the notify URL; exit 1 if any check fails")
    doctor.set_defaults(run=_doctor)


def _query(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import build
    from ledger.service.trade_query import answer_summary

    settings.require_apps()
    check_database(settings)
    ledger = build(settings)
    try:
        assert ledger.queries is not None  # built with every ledger
        result = ledger.queries.query_now(args.app_id, args.out_trade_no, who=f"{args.who} via CLI",
                                          merchant=args.auth_app_id)
    finally:
        ledger.close()
    print(json.dumps(answer_summary(result), ensure_ascii=False, default=str, indent=2))
    return 0 if result.answer is not None else 1


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import doctor
    from ledger.service.doctor import FAIL

    settings.require_apps()
    failed = 0
    for check in doctor(settings).checks():
        print(check.line(), flush=True)
        failed += check.status == FAIL
    print(f"{failed} check{'s' if failed != 1 else ''} failed" if failed else "every check passed")
    return 1 if failed else 0
