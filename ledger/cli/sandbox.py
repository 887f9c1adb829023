"""`ledger keygen`, `ledger simulate` and `ledger sandbox-gateway`: the commands that act as Alipay's sandbox
(see ledger.cli.simulate and ledger.cli.sandbox_gateway)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
from pathlib import Path

from ledger.cli.common import Commands, Formatter
from ledger.config import SettingsError

COMMANDS = frozenset({"keygen", "simulate", "sandbox-gateway"})


def add_commands(commands: Commands, common: argparse.ArgumentParser, formatter: Formatter) -> None:
    keygen = commands.add_parser("keygen", parents=[common], formatter_class=formatter,
                                 help="make a sandbox 'Alipay' key pair for simulate")
    keygen.add_argument("--dir", type=Path, default=Path(".sandbox"), help="the folder the two halves go to")
    keygen.set_defaults(run=_keygen)
    sim = commands.add_parser("simulate", parents=[common], formatter_class=formatter,
                              help="sign a notification as Alipay does and post it")
    sim.add_argument("--url", default="http://127.0.0.1:8000/api/alipay/notify", help="the ledger's notify URL")
    sim.add_argument("--private-key", type=Path, default=Path(".sandbox/alipay_private.pem"),
                     help="the sandbox's private key (ledger keygen makes it)")
    sim.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID", ""),
                     help="the app notified (from LEDGER_ALIPAY_APP_ID if set)")
    sim.add_argument("--out-trade-no", help="the merchant's order number (a new SIM... number if not given)")
    sim.add_argument("--trade-status", default="TRADE_SUCCESS",
                     help="TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED or WAIT_BUYER_PAY")
    sim.add_argument("--total-amount", default="88.00", help="the order's amount in yuan")
    sim.add_argument("--seller-id", default=os.environ.get("LEDGER_ALIPAY_SELLER_ID") or "2088000000000001",
                     help="the seller's Alipay account (from LEDGER_ALIPAY_SELLER_ID if set)")
    sim.add_argument("--refund-fee", help="with a refund: the amount refunded")
    sim.add_argument("--out-biz-no", help="with a refund: the merchant's refund number")
    sim.add_argument("--charset", default="utf-8", help="the charset the notification declares and is encoded in")
    sim.add_argument("--repeat", type=int, default=1, help="send the same notification this many times")
    sim.add_argument("--msg-method", help="send a message of the message service instead, such as "
                                          "alipay.trade.refund.depositback.completed")
    sim.add_argument("--biz-content", default="{}", help="with --msg-method: the message's biz_content, a JSON object")
    sim.set_defaults(run=_simulate)
    gateway = commands.add_parser("sandbox-gateway", parents=[common], formatter_class=formatter,
                                  help="serve a stand-in for Alipay's gateway that answers trade queries as it does")
    gateway.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    gateway.add_argument("--port", type=int, default=8010, help="the port to listen on")
    gateway.add_argument("--private-key", type=Path, default=Path(".sandbox/alipay_private.pem"),
                         help="the sandbox's 'Alipay' private key, which signs the answers (ledger keygen makes it)")
    gateway.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID", ""),
                         help="the app it knows (from LEDGER_ALIPAY_APP_ID if set)")
    gateway.add_argument("--app-public-key", type=Path, required=True,
                         help="the app's own public key (base64 or PEM), which verifies its requests")
    gateway.set_defaults(run=_sandbox_gateway)


def _keygen(args: argparse.Namespace, settings: object) -> int:
    from ledger.cli.simulate import keygen

    public = keygen(args.dir)
    print(f"sandbox key pair written to {args.dir}/ (the private half stays with `ledger simulate`)")
    print(f"export LEDGER_ALIPAY_PUBLIC_KEY_FILE={public}")
    return 0


def _simulate(args: argparse.Namespace, settings: object) -> int:
    from ledger.cli.simulate import simulate

    if not args.app_id:
        raise SettingsError("give --app-id or set LEDGER_ALIPAY_APP_ID")
    if args.msg_method:
        try:
            json.loads(args.biz_content)
        except ValueError:
            raise SettingsError(f"--biz-content is not JSON: {args.biz_content[:80]!r}") from None
    if not args.private_key.is_file():
        raise SettingsError(f"no private key at {args.private_key}: make one with `ledger keygen`")
    try:
        answers = simulate(args.url, args.private_key, args.app_id, out_trade_no=args.out_trade_no,
                           repeat=args.repeat, trade_status=args.trade_status, total_amount=args.total_amount,
                           seller_id=args.seller_id, refund_fee=args.refund_fee, out_biz_no=args.out_biz_no,
                           charset=args.charset, msg_method=args.msg_method, biz_content=args.biz_content)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"ledger: cannot reach {args.url}: {reason} (is `ledger serve` running there?)", file=sys.stderr)
        return 1
    for status, body in answers:
        print(f"HTTP {status} {body}")
    return 0 if all(body == "success" for _, body in answers) else 1


def _sandbox_gateway(args: argparse.Namespace, settings: object) -> int:
    from ledger.alipay.keys import load_public_key
    from ledger.alipay.sandbox import load_private_key
    from ledger.alipay.sandbox_gateway import SandboxGateway
    from ledger.cli.sandbox_gateway import GatewayServer

    if not args.app_id:
        raise SettingsError("give --app-id or set LEDGER_ALIPAY_APP_ID")
    for path in (args.private_key, args.app_public_key):
        if not path.is_file():
            raise SettingsError(f"no key at {path}: make a pair with `ledger keygen`")
    try:
        app_key = load_public_key(args.app_public_key.read_text())
    except ValueError as exc:
        raise SettingsError(f"--app-public-key {args.app_public_key}: {exc}") from None
    sandbox = SandboxGateway(load_private_key(args.private_key.read_bytes()))
    sandbox.add_app(args.app_id, app_key)
    try:
        server = GatewayServer(sandbox, args.host, args.port, default_app_id=args.app_id)
    except OSError as exc:
        print(f"ledger: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    base = f"http://{args.host}:{server.port}"
    print(f"stand-in gateway for app {args.app_id}: export LEDGER_ALIPAY_GATEWAY_URL={server.url}")
    print(f"a buyer pays: curl -s {base}/sandbox/trades -d '{{\"out_trade_no\": \"T-1001\", "
          f"\"total_amount\": \"88.00\"}}'")
    print(f"today's bill lists it: curl -s {base}/sandbox/bills -d '{{\"trades\": [{{\"out_trade_no\": \"T-1001\", "
          f"\"amount\": \"88.00\", \"fee\": \"0.53\"}}]}}'", flush=True)
    server.serve_forever()
    return 0
