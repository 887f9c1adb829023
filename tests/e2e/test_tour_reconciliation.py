"""The README tour's reconciliation lines, run in bash as a newcomer pastes them into a second shell while the demo
serves: today's bill told to the stand-in gateway, `ledger reconcile fetch` with the demo's settings, the day's
findings over HTTP, a finding resolved by hand."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.adapters.gateway.http import HttpGateway
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.domain.bill import BILL_METHOD
from projections.queries.reconciliation import day_findings
from projections.tables import journal_entries
from tests.e2e.test_bill_import_served import call, ledger_cli
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn, now
from tests.support.markdown import README, ROOT, blocks, shell_lines
from tests.support.server import FINANCE_TOKEN, OPERATOR_TOKEN, LedgerServer

MERCHANT_TOKEN = "m-token-0123456789"
TOKENS = f"merchant:{MERCHANT_TOKEN},finance/bob:{FINANCE_TOKEN},operator:{OPERATOR_TOKEN}"
MARK = "---- next tour line ----"


def tour_lines() -> list[str]:
    """The tour's commands from the bill told to the stand-in to the end of the block."""
    [tour] = [code for code in blocks(README, "sh") if "source .sandbox/tokens.env" in code]
    lines = list(shell_lines(tour))
    [first] = [n for n, line in enumerate(lines) if "localhost:8010/sandbox/bills" in line]
    return lines[first:]


def the_tour_so_far(server: LedgerServer, alipay: SandboxAlipay, gateway: StandIn) -> None:
    """What the tour's lines before did: T-1001 and T-1002 registered, T-1001 notified (thrice) with a refund's
    money back on the card, T-1002 paid at the stand-in and found by a query; and the demo's own order notified."""
    for order in ({"out_trade_no": "T-1001", "total_amount": "88.00", "subject": "a book"},
                  {"out_trade_no": "T-1002", "total_amount": "9.90"}):
        assert call(server, "POST", "/api/orders", MERCHANT_TOKEN, json.dumps(order).encode())[0] == 201
    for body in (alipay.body("T-1001"), alipay.body("T-1001"), alipay.body("DEMO-20261201000000"),
                 alipay.deposit_back("T-1001", "RF-1", dback_amount="8.00")):
        assert server.notify(body) == (200, "success")
    gateway.sandbox.add_trade(APP_ID, "T-1002", "9.90")
    assert call(server, "POST", "/api/orders/T-1002/query", OPERATOR_TOKEN)[0] == 200
    server.read_order("T-1002", until=lambda row: row["status"] == "PAID")


def second_shell(tmp_path: Path, settings: dict[str, str]) -> Path:
    """A folder like the checkout the tour runs in: `.venv/bin/ledger`, and the demo's settings in .sandbox/demo.env
    as scripts/demo.sh writes them (`export NAME=value`, quoted for bash)."""
    shell = tmp_path / "checkout"
    (shell / ".venv" / "bin").mkdir(parents=True)
    ledger = shell / ".venv" / "bin" / "ledger"
    ledger.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ledger.cli "$@"\n')
    ledger.chmod(0o755)
    (shell / ".sandbox").mkdir()
    (shell / ".sandbox" / "demo.env").write_text(
        "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items()))
    return shell


def until(read: Callable[[], Any], holds: Callable[[Any], bool], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while not holds(value := read()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holds(value), value
    return value


@pytest.mark.slow
def test_the_tours_lines_fetch_todays_bill_match_it_and_resolve_the_payment_the_ledger_never_heard_of(
        alipay: SandboxAlipay, alipay_gateway: StandIn, tmp_path: Path) -> None:
    today = datetime.now(CHINA_STANDARD_TIME).date().isoformat()
    settings = {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
                "LEDGER_API_TOKENS": TOKENS}
    server = LedgerServer(settings, tmp_path / "serve.log")
    try:
        server.wait_ready()
        the_tour_so_far(server, alipay, alipay_gateway)
        script = f"\necho '{MARK}'\n".join(
            line.replace("localhost:8000", f"127.0.0.1:{server.port}")
                .replace("localhost:8010", f"127.0.0.1:{alipay_gateway.server.port}") for line in tour_lines())
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "FINANCE_TOKEN": FINANCE_TOKEN}
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=second_shell(tmp_path, settings),
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        told, fetched, day, _, resolved = done.stdout.split(MARK + "\n")

        assert json.loads(told) == {"app_id": APP_ID, "bill_date": today, "rows": 2}
        assert f"day {today}" in fetched and "2 payments, 0 refunds" in fetched and "服务费 -0.53" in fetched
        assert "asked Alipay about finding" in fetched  # T-1003, at once
        found = json.loads(day)
        kinds = {(f["out_trade_no"], f["kind"]): f["state"] for f in found["findings"]}
        assert kinds == {("T-1003", "missing_in_ledger"): "open",  # the stand-in has no such trade: still open
                         ("T-1002", "missing_in_bill"): "carried",  # paid by the query, on tomorrow's bill maybe
                         ("DEMO-20261201000000", "missing_in_bill"): "carried"}
        [row] = found["days"]
        assert (row["matched"], row["fee"], row["fees_posted"]) == (1, "-0.53", "-0.53"), row
        assert "missing_in_ledger of T-1003" in resolved and "is resolved" in resolved

        settled = until(lambda: json.loads(call(server, "GET", f"/api/reconciliation/{today}?kind=missing_in_ledger",
                                                FINANCE_TOKEN)[1])["findings"],
                        lambda findings: findings[0]["state"] == "resolved")
        assert (settled[0]["note"], settled[0]["settled_by"]) == ("a test payment at the stand-in", "finance via CLI")
        engine = sa.create_engine(settings["LEDGER_DATABASE_URL"])
        with engine.connect() as conn:
            fees = conn.scalar(sa.select(sa.func.sum(journal_entries.c.amount))
                               .where(journal_entries.c.account == "alipay_fees"))
        engine.dispose()
        assert Decimal(fees) == Decimal("0.53")  # T-1001's 服务费, in the journal
    finally:
        server.stop()


@pytest.mark.slow
def test_a_day_fetched_from_a_shell_is_in_the_read_model_when_the_command_ends(
        alipay: SandboxAlipay, alipay_gateway: StandIn, tmp_path: Path) -> None:
    env = {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}
    alipay_gateway.sandbox.post_bill(APP_ID, {"bill_date": "2026-12-01", "trades": [
        {"out_trade_no": "T-1003", "amount": "5.00"}]})
    assert ledger_cli(env, "migrate").returncode == 0
    fetched = ledger_cli(env, "reconcile", "fetch", "--date", "2026-12-01")
    assert fetched.returncode == 0, fetched.stderr
    # No server follows the log here: what the API would read is there because the command put it there.
    engine = sa.create_engine(env["LEDGER_DATABASE_URL"])
    try:
        findings = day_findings(engine, date(2026, 12, 1))
    finally:
        engine.dispose()
    assert [(f["out_trade_no"], f["kind"], f["state"]) for f in findings] == [("T-1003", "missing_in_ledger", "open")]


def test_the_stand_in_refuses_a_bill_it_cannot_read_and_keeps_none(alipay_gateway: StandIn) -> None:
    base = f"http://127.0.0.1:{alipay_gateway.server.port}/sandbox/bills"
    for body, says in ((b"{not json", "the body is not JSON"),
                       (b'{"bill_date": "2026-12-01", "trades": [{"out_trade_no": "T-1", "amount": 5}]}',
                        "trade 1 (T-1): amount must be yuan as a string")):
        request = urllib.request.Request(base, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 400 and says in json.loads(refused.value.read())["error"]
    gateway = HttpGateway({APP_ID: alipay_gateway.app()}, alipay_gateway.url, timeout=5, clock=now)
    asked = gateway.call(APP_ID, BILL_METHOD, {"bill_type": "trade", "bill_date": "2026-12-01"})
    assert asked.sub_code == "isp.bill_not_exist"
