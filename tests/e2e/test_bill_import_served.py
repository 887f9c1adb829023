"""A finance user imports Alipay's trade bill over HTTP from a real `ledger serve`, and an auditor gets the exact
file back; `ledger reconcile import` and `ledger reconcile fetch` from a shell do the same."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from ledger.alipay.sandbox_bill import DAY, bill_zip
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.bills import trades
from tests.support.gateway import StandIn
from tests.support.server import FINANCE_TOKEN, OPERATOR_TOKEN, LedgerServer

AUDITOR_TOKEN = "a-token-0123456789"
TOKENS = f"finance/bob:{FINANCE_TOKEN},operator:{OPERATOR_TOKEN},auditor:{AUDITOR_TOKEN}"


def call(server: LedgerServer, method: str, path: str, token: str, body: bytes | None = None
         ) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(server.url + path, method=method, data=body,
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}


@pytest.mark.slow
def test_finance_imports_a_bill_over_http_and_an_auditor_downloads_the_exact_file(
        alipay: SandboxAlipay, tmp_path: Path) -> None:
    env = {**alipay.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", "LEDGER_API_TOKENS": TOKENS}
    server = LedgerServer(env, tmp_path / "serve.log")
    try:
        server.wait_ready()
        data = bill_zip(trades())
        assert call(server, "POST", "/api/reconciliation/bills", OPERATOR_TOKEN, data)[0] == 403
        status, body, _ = call(server, "POST", "/api/reconciliation/bills", FINANCE_TOKEN, data)
        record = json.loads(body)
        assert status == 201 and record["newly"] and record["sha256"] == hashlib.sha256(data).hexdigest()
        assert (record["who"], record["bill_date"], record["payments"], record["refunds"]) == (
            "finance bob via API", DAY.isoformat(), 2, 1)
        assert (record["reconciliation"]["day"], record["reconciliation"]["run"]) == (DAY.isoformat(), 1)  # matched
        status, body, _ = call(server, "POST", "/api/reconciliation/bills", FINANCE_TOKEN, data)
        assert status == 200 and not json.loads(body)["newly"] and json.loads(body)["reconciliation"]["run"] == 2
        status, body, _ = call(server, "POST", "/api/reconciliation/bills", FINANCE_TOKEN, b"PK not a zip")
        assert status == 400 and json.loads(body)["error"] == "not_a_bill"  # the reason, for a client to branch on
        path = f"/api/reconciliation/bills/{record['bill_id']}"
        assert json.loads(call(server, "GET", path, OPERATOR_TOKEN)[1])["sha256"] == record["sha256"]
        assert call(server, "GET", path + "?download=1", OPERATOR_TOKEN)[0] == 403
        status, body, headers = call(server, "GET", path + "?download=1", AUDITOR_TOKEN)
        assert status == 200 and body == data and headers["x-content-sha256"] == record["sha256"]
        assert call(server, "GET", "/api/reconciliation/bills/not-a-bill", AUDITOR_TOKEN)[0] == 404
    finally:
        server.stop()


def ledger_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_a_bill_is_imported_and_fetched_from_a_shell(alipay: SandboxAlipay, alipay_gateway: StandIn,
                                                    tmp_path: Path) -> None:
    env = {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
           "LEDGER_BILL_DIR": str(tmp_path / "bills")}
    assert ledger_cli(env, "migrate").returncode == 0
    file = tmp_path / "20881234567890120156_20190916.zip"
    file.write_bytes(bill_zip(trades()))
    done = ledger_cli(env, "reconcile", "import", str(file))
    assert done.returncode == 0 and done.stdout.startswith("imported: bill "), done.stdout + done.stderr
    assert f"matched: run 1 of app {APP_ID}'s {DAY}: matched 0, missing_in_ledger 2" in done.stdout  # and its day
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    assert (tmp_path / "bills" / sha[:2] / sha).read_bytes() == file.read_bytes()  # LEDGER_BILL_DIR
    again = ledger_cli(env, "reconcile", "import", str(file))
    assert again.returncode == 0 and again.stdout.startswith("already imported")
    other_day = bill_zip(trades()[:1], day=date(2019, 9, 17))
    alipay_gateway.sandbox.add_bill(APP_ID, "2019-09-17", other_day)
    fetched = ledger_cli(env, "reconcile", "fetch", "--date", "2019-09-17")
    assert fetched.returncode == 0 and "1 payments" in fetched.stdout, fetched.stdout + fetched.stderr
    assert f"matched: run 1 of app {APP_ID}'s 2019-09-17: matched 0, missing_in_ledger 1" in fetched.stdout
    missing = ledger_cli(env, "reconcile", "fetch", "--date", "2019-09-18")
    assert missing.returncode == 1 and "no trade bill" in missing.stderr
