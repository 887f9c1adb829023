"""What operators and auditors read and do from a shell: an order's history, the audit, the manual queue."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ledger.alipay.keyring import AlipayKey, load_key_ring
from ledger.cli.common import Commands, Formatter, check_database
from ledger.config import Settings, SettingsError


def add_commands(commands: Commands, common: argparse.ArgumentParser, formatter: Formatter) -> None:
    app_id = {"default": os.environ.get("LEDGER_ALIPAY_APP_ID", ""),
              "help": "the order's Alipay app (from LEDGER_ALIPAY_APP_ID if set)"}
    hist = commands.add_parser("history", parents=[common], formatter_class=formatter,
                               help="print every event of an order's stream")
    hist.add_argument("out_trade_no", help="the merchant's order number")
    hist.add_argument("--app-id", **app_id)
    hist.set_defaults(run=_history)
    audit = commands.add_parser("audit", parents=[common], formatter_class=formatter, help="auditors' checks")
    audit.add_argument("action", choices=["verify"],
                       help="verify: re-verify Alipay's signature on every recorded callback, with the key that "
                            "verified it on arrival")
    audit.add_argument("--key", action="append", default=[], metavar="FILE",
                       help="a retired Alipay public key or certificate (or several, as in the key setting) that "
                            "recorded callbacks name; repeatable")
    audit.set_defaults(run=_audit)
    queue = commands.add_parser("manual-queue", parents=[common], formatter_class=formatter,
                                help="abandoned deliveries: list, retry or resolve them")
    queue.add_argument("action", choices=["list", "retry", "resolve"],
                       help="list: the abandoned deliveries; retry: deliver an order's again; resolve: settle "
                            "them by hand (with --note)")
    queue.add_argument("out_trade_no", nargs="?", help="with retry and resolve: the order's number")
    queue.add_argument("--app-id", **app_id)
    queue.add_argument("--note", default="", help="why (required to resolve)")
    queue.add_argument("--who", default=os.environ.get("USER", "operator"),
                       help="who acts, as recorded with the action")
    queue.set_defaults(run=_manual_queue)


def _history(args: argparse.Namespace, settings: Settings) -> int:
    from api.views import event_view
    from ledger.bootstrap import build

    check_database(settings)
    ledger = build(settings)
    try:
        events = ledger.service.history(args.app_id, args.out_trade_no)
    finally:
        ledger.close()
    if not events:
        print(f"no order {args.out_trade_no} for app {args.app_id}", file=sys.stderr)
        return 1
    for view in map(event_view, events):
        print(f"v{view['version']:<3} {view['recorded_at']:%Y-%m-%d %H:%M:%S} {view['type']}")
        data = view["data"]
        params = data.pop("params", None)
        for key, value in data.items():
            print(f"       {key}: {value}")
        if params:
            print("       params: " + " ".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign"))
    return 0


def _manual_queue(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import build
    from projections.queries.operations import manual_queue

    check_database(settings)
    ledger = build(settings)
    try:
        if args.action == "list":
            if ledger.engine is None:
                raise SettingsError("the manual queue is read from a SQL database (sqlite:/// or postgresql://)")
            rows = manual_queue(ledger.engine)
            for row in rows:
                print(f"{row['app_id']} {row['out_trade_no']} {row['change']}: {row['attempts']} attempts, "
                      f"last error {row['last_error']!r}, since {row['updated_at']:%Y-%m-%d %H:%M:%S}")
            print(f"{len(rows)} abandoned deliveries")
            return 0
        if not args.out_trade_no:
            raise SettingsError(f"ledger manual-queue {args.action} needs the order's out_trade_no")
        act = ledger.service.manual_retry if args.action == "retry" else ledger.service.resolve
        changes = act(args.app_id, args.out_trade_no, who=f"{args.who} via CLI", note=args.note)
        print(f"{args.action}: {args.out_trade_no} {', '.join(changes)}")
        return 0
    finally:
        ledger.close()


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import build
    from ledger.service.audit import recorded_callbacks_that_fail

    settings.require_apps()
    given = _given_keys(args.key)
    check_database(settings)
    ledger = build(settings)
    counted: list[int] = []
    failures = 0
    try:
        for finding in recorded_callbacks_that_fail(ledger.store, settings.apps, counted=counted, given=given):
            failures += 1
            print(f"FAILED position {finding.position} app {finding.app_id} order {finding.out_trade_no} "
                  f"notify_id {finding.notify_id}: {finding.problem}")
    finally:
        ledger.close()
    print(f"checked {counted[0]} recorded callbacks, messages and trade-query answers: {failures} failed "
          "verification")
    return 1 if failures else 0


def _given_keys(paths: list[str]) -> list[AlipayKey]:
    """The keys of every `--key FILE`: whatever the key setting accepts (keys, certificates, several)."""
    keys: list[AlipayKey] = []
    for path in paths:
        try:
            keys += load_key_ring(Path(path).read_text()).keys
        except OSError as exc:
            raise SettingsError(f"--key {path} cannot be read: {exc.strerror}") from None
        except ValueError as exc:
            raise SettingsError(f"--key {path}: {exc}") from None
    return keys
