"""Finance reconciles a day over HTTP from a real `ledger serve`: the bill imported is matched at once, the days and
a day's findings are read as JSON and CSV, a day is matched again, a finding resolved; `ledger reconcile` from a
shell does the same."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from ledger.alipay.sandbox_bill import DAY, bill_zip
from ledger.bootstrap import Ledger
from projections.queries.reconciliation import DAY_COLUMNS, FINDING_COLUMNS
from tests.e2e.test_bill_import_served import AUDITOR_TOKEN, call, ledger_cli
from tests.support.alipay import SandboxAlipay
from tests.support.reconciliation import TIME, at, next_day, payment
from tests.support.refs import ref
from tests.support.server import FINANCE_TOKEN, OPERATOR_TOKEN, LedgerServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

MERCHANT_TOKEN = "m-token-0123456789"
TOKENS = f"finance/bob:{FINANCE_TOKEN},operator:{OPERATOR_TOKEN},auditor:{AUDITOR_TOKEN},merchant:{MERCHANT_TOKEN}"
RANGE = f"/api/reconciliation?from={DAY}&to={DAY}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, alipay: SandboxAlipay, tmp_path: Path) -> Iterator[LedgerServer]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    served = LedgerServer({**alipay.env(), "LEDGER_DATABASE_URL": url, "LEDGER_API_TOKENS": TOKENS},
                          tmp_path / "serve.log")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def get_json(server: LedgerServer, path: str, token: str = FINANCE_TOKEN) -> tuple[int, Any]:
    status, body, _ = call(server, "GET", path, token)
    return status, json.loads(body)


def post_json(server: LedgerServer, path: str, payload: object = None, token: str = FINANCE_TOKEN
              ) -> tuple[int, Any]:
    status, body, _ = call(server, "POST", path, token, b"" if payload is None else json.dumps(payload).encode())
    return status, json.loads(body)


def until(read: Callable[[], Any], holds: Callable[[Any], bool], seconds: float = 15) -> Any:
    """What `read` gives once `holds` of it: the read model follows the log a moment behind."""
    deadline = time.monotonic() + seconds
    while not holds(found := read()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holds(found), found
    return found


def csv_of(server: LedgerServer, path: str) -> list[list[str]]:
    status, body, headers = call(server, "GET", path, OPERATOR_TOKEN)
    assert status == 200 and headers["content-type"].startswith("text/csv"), body
    assert body.startswith("\ufeff".encode())  # a spreadsheet then reads it as UTF-8
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.mark.slow
def test_a_bill_imported_over_http_is_matched_and_its_day_and_findings_are_read_matched_again_and_resolved(
        server: LedgerServer, alipay: SandboxAlipay) -> None:
    known, lost = ref("K"), ref("L")
    when = at()
    assert server.notify(alipay.body(known, total_amount="88.00", gmt_payment=when.strftime(TIME)))[1] == "success"
    bill = bill_zip([payment(known, "88.00", when, fee="0.53"), payment(lost, "10.00", when, fee="0.06")])
    status, body, _ = call(server, "POST", "/api/reconciliation/bills", FINANCE_TOKEN, bill)
    imported = json.loads(body)
    run = imported["reconciliation"]
    assert status == 201 and (run["app_id"], run["day"], run["run"], run["bill_id"]) == (
        alipay.app_id, str(DAY), 1, imported["bill_id"])
    assert (run["counts"]["matched"], run["counts"]["missing_in_ledger"], len(run["opened"])) == (1, 1, 1)
    [finding_id] = run["opened"]

    # The days matched, as JSON and CSV.
    status, report = until(lambda: get_json(server, RANGE), lambda r: r[1]["days"][0]["findings_open"] == 1)
    [row] = report["days"]
    assert status == 200 and (report["from"], report["to"]) == (str(DAY), str(DAY))
    assert (row["day"], row["bill_imported"], row["bill_id"], row["runs"]) == (str(DAY), True, imported["bill_id"], 1)
    assert (row["bill_payments"], row["bill_payment_amount"], row["ledger_payments"], row["ledger_payment_amount"],
            row["matched"], row["fee"], row["fees_posted"]) == (2, "98.00", 1, "88.00", 1, "-0.59", "-0.53")
    header, *lines = csv_of(server, RANGE + "&format=csv")
    assert header == list(DAY_COLUMNS) == list(row) and len(lines) == 1
    assert dict(zip(header, lines[0], strict=True))["findings_open"] == "1"

    # The day: its row and its findings, both sides' values; filtered; as CSV.
    status, the_day = get_json(server, f"/api/reconciliation/{DAY}", OPERATOR_TOKEN)
    [finding] = the_day["findings"]
    assert status == 200 and the_day["days"] == report["days"]
    assert (finding["finding_id"], finding["kind"], finding["state"], finding["out_trade_no"]) == (
        finding_id, "missing_in_ledger", "open", lost)
    assert (finding["bill_amount"], finding["ledger_amount"], finding["bill_trade_no"]) == (
        "10.00", None, payment(lost, "10.00", when).trade_no)
    assert len(get_json(server, f"/api/reconciliation/{DAY}?kind=missing_in_ledger&state=open")[1]["findings"]) == 1
    assert get_json(server, f"/api/reconciliation/{DAY}?kind=amount_mismatch")[1]["findings"] == []
    assert get_json(server, f"/api/reconciliation/{DAY}?state=resolved")[1]["findings"] == []
    header, *lines = csv_of(server, f"/api/reconciliation/{DAY}?format=csv")
    assert header == list(FINDING_COLUMNS) and len(lines) == 1
    assert dict(zip(header, lines[0], strict=True))["out_trade_no"] == lost

    # Matched again: the same finding, nothing new.
    status, rerun = post_json(server, f"/api/reconciliation/{DAY}/match", token=OPERATOR_TOKEN)
    assert status == 200 and (rerun["run"], rerun["opened"], rerun["closed"]) == (2, [], [])
    assert rerun["counts"]["missing_in_ledger"] == 1
    status, error = post_json(server, f"/api/reconciliation/{next_day()}/match")
    assert status == 404 and error["error"] == "no_bill" and str(next_day()) in error["detail"]

    # Resolved by hand, once.
    resolve = f"/api/reconciliation/findings/{finding_id}/resolve"
    assert post_json(server, resolve, {"note": "  "})[0] == 400
    assert post_json(server, resolve, {"not": "a note"})[0] == 400
    status, resolved = post_json(server, resolve, {"note": "refunded to the buyer by hand"})
    assert status == 200 and (resolved["state"], resolved["who"], resolved["note"]) == (
        "resolved", "finance bob via API", "refunded to the buyer by hand")
    status, again = post_json(server, resolve, {"note": "again"}, OPERATOR_TOKEN)
    assert status == 409 and "resolved already" in again["detail"]
    assert post_json(server, f"/api/reconciliation/findings/{uuid.uuid4()}/resolve", {"note": "x"})[0] == 404
    assert post_json(server, "/api/reconciliation/findings/not-an-id/resolve", {"note": "x"})[0] == 404
    until(lambda: get_json(server, f"/api/reconciliation/{DAY}?state=resolved")[1]["findings"], lambda f: len(f) == 1)

    # The same file again: nothing new imported, the day matched once more; the resolution stands.
    status, body, _ = call(server, "POST", "/api/reconciliation/bills", FINANCE_TOKEN, bill)
    again_imported = json.loads(body)
    assert status == 200 and not again_imported["newly"] and again_imported["reconciliation"]["run"] == 3
    assert again_imported["reconciliation"]["opened"] == []


@pytest.mark.slow
def test_the_reconciliation_endpoints_refuse_bad_parameters_and_other_roles(tmp_path: Path,
                                                                           alipay: SandboxAlipay) -> None:
    env = {**alipay.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", "LEDGER_API_TOKENS": TOKENS}
    server = LedgerServer(env, tmp_path / "serve.log")
    try:
        server.wait_ready()
        for path, detail in [
                ("/api/reconciliation", "from is required"),
                (f"/api/reconciliation?from={DAY}", "to is required"),
                (f"/api/reconciliation?from={next_day()}&to={DAY}", "from must not be after to"),
                ("/api/reconciliation?from=2019-01-01&to=2020-01-02", "at most 366 days"),
                (f"/api/reconciliation?from={DAY}&to={DAY}&format=xls", "format must be json or csv"),
                (f"/api/reconciliation?from={DAY}&to={DAY}&kind=x", "unknown parameter kind"),
                (f"/api/reconciliation/{DAY}?kind=missing", "kind must be one of missing_in_ledger"),
                (f"/api/reconciliation/{DAY}?state=settled", "state must be one of open, carried, resolved, closed"),
                (f"/api/reconciliation/{DAY}?state=open&state=closed", "give state once")]:
            status, error = get_json(server, path)
            assert (status, error["error"]) == (400, "invalid_request") and detail in error["detail"], (path, error)
        for path in ("/api/reconciliation/2019-9-16", "/api/reconciliation/yesterday", "/api/reconciliation/bills"):
            status, error = get_json(server, path)
            assert status == 404 and "YYYY-MM-DD" in error["detail"], path
        assert post_json(server, "/api/reconciliation/2019-02-30/match")[0] == 404
        resolve = f"/api/reconciliation/findings/{uuid.uuid4()}/resolve"
        for method, path in [("GET", RANGE), ("GET", f"/api/reconciliation/{DAY}"),
                             ("POST", f"/api/reconciliation/{DAY}/match"), ("POST", resolve)]:
            for token in (AUDITOR_TOKEN, MERCHANT_TOKEN):
                assert call(server, method, path, token, b'{"note": "x"}')[0] == 403, (method, path, token)
            assert call(server, method, path, "", b'{"note": "x"}')[0] == 401, (method, path)
        # The bills' own routes still answer as theirs.
        assert call(server, "GET", "/api/reconciliation/bills/not-a-bill", AUDITOR_TOKEN)[0] == 404
        assert post_json(server, "/api/reconciliation/bills")[1]["error"] == "bad_request"
    finally:
        server.stop()


def test_an_import_stands_and_says_so_when_its_day_cannot_be_matched(make_ledger: Callable[..., Ledger],
                                                                   sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    assert ledger.reconcile is not None
    ledger.reconcile.wait_seconds, ledger.reconcile.caught_up = 0, lambda position: False  # a read model stuck
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        response = client.post("/api/reconciliation/bills", content=bill_zip([payment(ref("L"), "10.00", at())]),
                               headers={"authorization": f"Bearer {FINANCE_TOKEN}"})
    assert response.status_code == 201 and response.json()["newly"]
    assert "not matched" in response.json()["reconciliation"]["error"]
    assert "read model has not caught up" in response.json()["reconciliation"]["error"]


@pytest.mark.slow
def test_a_day_is_imported_reported_resolved_and_matched_from_a_shell(alipay: SandboxAlipay, tmp_path: Path) -> None:
    env = {**alipay.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}
    assert ledger_cli(env, "migrate").returncode == 0
    lost = ref("L")
    file = tmp_path / "bill.zip"
    file.write_bytes(bill_zip([payment(lost, "10.00", at(), fee="0.06")]))
    done = ledger_cli(env, "reconcile", "import", str(file))
    assert done.returncode == 0, done.stdout + done.stderr
    first, second, third = done.stdout.splitlines()[:3]
    assert first.startswith("imported: bill ") and "1 payments" in second
    assert third.startswith(f"matched: run 1 of app {alipay.app_id}'s {DAY}: matched 0, missing_in_ledger 1; "
                            "1 findings opened, 0 closed"), done.stdout

    report = ledger_cli(env, "reconcile", "report", "--date", str(DAY))
    assert report.returncode == 0, report.stdout + report.stderr
    assert "bill:   1 payments 10.00, 0 refunds 0.00; 服务费 -0.06" in report.stdout
    assert "ledger: 0 payments 0.00" in report.stdout
    assert "matched 0, missing_in_ledger 1; findings: 1 open, 0 carried, 0 resolved, 0 closed" in report.stdout
    [line] = [line for line in report.stdout.splitlines() if lost in line]
    finding_id, state, kind, out_trade_no, request_no = line.split()[:5]
    assert (state, kind, out_trade_no, request_no) == ("open", "missing_in_ledger", lost, "-")
    assert "bill 10.00 ledger -:" in line

    assert ledger_cli(env, "reconcile", "resolve", finding_id).returncode == 1  # no note
    resolved = ledger_cli(env, "reconcile", "resolve", finding_id, "--note", "refunded by hand", "--who", "carol")
    assert resolved.returncode == 0 and resolved.stdout.strip().endswith("is resolved"), resolved.stderr
    again = ledger_cli(env, "reconcile", "resolve", finding_id, "--note", "again")
    assert again.returncode == 1 and "resolved already" in again.stderr
    unknown = ledger_cli(env, "reconcile", "resolve", str(uuid.uuid4()), "--note", "x")
    assert unknown.returncode == 1 and "no finding" in unknown.stderr
    after = ledger_cli(env, "reconcile", "report", "--date", str(DAY)).stdout
    assert "findings: 0 open, 0 carried, 1 resolved, 0 closed" in after and lost not in after

    rerun = ledger_cli(env, "reconcile", "match", "--date", str(DAY))
    assert rerun.returncode == 0 and rerun.stdout.startswith("matched: run 2 "), rerun.stdout + rerun.stderr
    missing = ledger_cli(env, "reconcile", "match", "--date", str(next_day()))
    assert missing.returncode == 1 and f"no bill of app {alipay.app_id} for {next_day()}" in missing.stderr
    nothing = ledger_cli(env, "reconcile", "report", "--date", str(next_day()))
    assert nothing.returncode == 0 and "no bill imported and no run recorded" in nothing.stdout
