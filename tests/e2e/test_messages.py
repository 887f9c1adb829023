"""End to end over HTTP, on SQLite and on PostgreSQL: messages of Alipay's message service posted to the notify
endpoint as Alipay posts them, answered `success` once recorded, seen in the order's row and history and in
`GET /api/messages`; a forgery or an encrypted message refused; a copy changing nothing twice; a database
outage answered 503 `fail` with nothing recorded."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from eventsourcing.persistence import PersistenceError
from starlette.testclient import TestClient

from api.app import create_app
from api.listing import cursor_after
from ledger.bootstrap import Ledger
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.api import FORM, TOKENS, ApiContract, as_role, history, is_json_error, notify
from tests.support.refs import ref
from tests.support.server import FINANCE_TOKEN, LedgerServer
from tests.support.waiting import wait_until

UNKNOWN = "alipay.fund.trans.order.changed"


def post(client: TestClient, body: bytes) -> tuple[int, str]:
    answer = client.post("/api/alipay/notify", content=body, headers=FORM)
    return answer.status_code, answer.text


def listed(client: TestClient, ledger: Ledger, **params: str) -> Any:
    assert ledger.runner is not None
    ledger.runner.catch_up()
    return client.get("/api/messages", params=params, headers=as_role("operator"))


def row(client: TestClient, ledger: Ledger, out_trade_no: str) -> Any:
    assert ledger.runner is not None
    ledger.runner.catch_up()
    shown = client.get(f"/api/orders/{out_trade_no}", headers=as_role("finance"))
    assert shown.status_code == 200, shown.text
    return shown.json()


class MessagesApiContract(ApiContract):
    def test_a_deposit_back_is_answered_success_and_shown_in_the_order_row_and_history(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref("E")
        notify(client, alipay, order)
        assert post(client, alipay.deposit_back(order, "R1", dback_amount="8.00")) == (200, "success")
        shown = row(client, ledger, order)
        assert (shown["deposit_back_status"], shown["deposited_back_amount"], shown["status"]) == ("S", "8.00", "PAID")
        events = history(client, order).json()["events"]
        assert [e["type"] for e in events][3:] == ["MessageReceived", "RefundDepositedBack"]
        received, deposited = events[3]["data"], events[4]["data"]
        assert received["msg_method"] == "alipay.trade.refund.depositback.completed" and received["key"]
        assert "sign" in received["params"] and "biz_content" in received["params"]
        assert (deposited["out_request_no"], deposited["dback_status"], deposited["dback_amount"]) == (
            "R1", "S", "8.00")
        [message] = listed(client, ledger).json()["messages"]
        assert (message["out_trade_no"], message["applied"]) == (order, True)

    def test_a_copy_of_a_deposit_back_changes_nothing_twice(self, client: TestClient, ledger: Ledger,
                                                           alipay: SandboxAlipay) -> None:
        order = ref("E")
        notify(client, alipay, order)
        body = alipay.deposit_back(order, "R1", dback_amount="8.00")
        assert [post(client, body) for _ in range(3)] == [(200, "success")] * 3
        assert row(client, ledger, order)["deposited_back_amount"] == "8.00"
        types = [e["type"] for e in history(client, order).json()["events"]]
        assert (types.count("MessageReceived"), types.count("RefundDepositedBack")) == (3, 1)
        assert [(m["duplicate"], m["applied"]) for m in listed(client, ledger).json()["messages"]] == [
            (False, True), (True, False), (True, False)]

    def test_an_unknown_msg_method_is_answered_success_recorded_and_listed_for_operators(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        body = alipay.message(UNKNOWN, {"out_biz_no": "B1", "status": "SUCCESS"}, notify_id="N-1")
        assert post(client, body) == (200, "success")
        answer = listed(client, ledger, msg_method=UNKNOWN)
        assert answer.status_code == 200, answer.text
        [message] = answer.json()["messages"]
        assert (message["notify_id"], message["app_id"], message["applied"], message["out_trade_no"]) == (
            "N-1", APP_ID, False, None)
        assert answer.json()["next_cursor"] is None
        table = listed(client, ledger, format="csv")
        rows = list(csv.DictReader(io.StringIO(table.content.decode("utf-8-sig"))))
        assert [(r["notify_id"], r["applied"]) for r in rows] == [("N-1", "false")]
        assert client.get("/api/messages", headers=as_role("finance")).status_code == 403

    def test_the_list_pages_with_its_own_cursor_and_refuses_what_it_does_not_take(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        for n in range(3):
            assert post(client, alipay.message(UNKNOWN, {"n": str(n)})) == (200, "success")
        first = listed(client, ledger, limit="2").json()
        rest = listed(client, ledger, limit="2", cursor=first["next_cursor"]).json()
        assert len(first["messages"]) == 2 and len(rest["messages"]) == 1 and rest["next_cursor"] is None
        assert is_json_error(listed(client, ledger, cursor=cursor_after(1)), 400)  # an order listing's cursor
        assert is_json_error(listed(client, ledger, method=UNKNOWN), 400)  # a mistyped filter
        assert is_json_error(listed(client, ledger, **{"from": "2026-12-02", "to": "2026-12-01"}), 400)

    def test_a_message_with_a_bad_signature_is_refused_400_fail_logged_and_recorded_nowhere(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref("E")
        notify(client, alipay, order)
        forged = alipay.deposit_back(order, "R1", dback_amount="8.00").replace(b"8.00", b"80.00")
        assert post(client, forged) == (400, "fail")
        latest = client.get("/api/rejected-callbacks", headers=as_role("operator")).json()["rejected"][0]
        assert latest["reason"] == "bad_signature" and "depositback" in latest["body"]
        assert "MessageReceived" not in [e["type"] for e in history(client, order).json()["events"]]
        assert listed(client, ledger).json()["messages"] == []
        assert row(client, ledger, order)["deposit_back_status"] is None

    def test_an_encrypted_message_is_refused_400_fail_with_a_reason_naming_aes(
            self, client: TestClient, ledger: Ledger, alipay: SandboxAlipay) -> None:
        body = alipay.message(UNKNOWN, "c2VjcmV0", encrypt_type="AES")
        assert post(client, body) == (400, "fail")
        latest = client.get("/api/rejected-callbacks", headers=as_role("operator")).json()["rejected"][0]
        assert latest["reason"] == "aes_encrypted"
        assert listed(client, ledger).json()["messages"] == []


class TestMessagesApiOnSQLite(MessagesApiContract):
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestMessagesApiOnPostgres(MessagesApiContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


def reads_again(ledger: Ledger) -> bool:
    try:
        ledger.store.ping()
    except PersistenceError:
        return False
    return True


def test_a_database_outage_answers_503_fail_and_records_nothing_until_alipay_sends_it_again(
        make_ledger: Callable[..., Ledger], postgres_url: str, tcp_proxy: Any, alipay: SandboxAlipay) -> None:
    direct = urlsplit(postgres_url)
    proxy = tcp_proxy(direct.hostname, direct.port)
    ledger = make_ledger(proxy.url_through(postgres_url), LEDGER_API_TOKENS=TOKENS)
    order = ref("E")
    body = alipay.deposit_back(order, "R1")
    with TestClient(create_app(ledger, close_on_shutdown=False), raise_server_exceptions=False) as client:
        notify(client, alipay, order)
        proxy.cut()
        started = time.monotonic()
        answer = client.post("/api/alipay/notify", content=body, headers=FORM)
        assert (answer.status_code, answer.text) == (503, "fail")
        assert time.monotonic() - started < 15  # while Alipay still listens
        proxy.restore()
        assert wait_until(lambda: reads_again(ledger))
        assert "MessageReceived" not in [type(e).__name__ for e in ledger.service.history(APP_ID, order)]
        assert post(client, body) == (200, "success")  # Alipay's next try
        assert [type(e).__name__ for e in ledger.service.history(APP_ID, order)][3:] == [
            "MessageReceived", "RefundDepositedBack"]


def ledger_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_ledger_simulate_posts_a_deposit_back_that_a_served_ledger_shows_in_the_order_row(tmp_path: Path) -> None:
    assert ledger_cli("keygen", "--dir", str(tmp_path), env={}).returncode == 0
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", "LEDGER_ALIPAY_APP_ID": APP_ID,
           "LEDGER_ALIPAY_PUBLIC_KEY_FILE": str(tmp_path / "alipay_public.txt"),
           "LEDGER_API_TOKENS": f"finance:{FINANCE_TOKEN}"}
    server = LedgerServer(env, tmp_path / "serve.log")
    try:
        server.wait_ready()
        sandbox = ["--url", server.url + "/api/alipay/notify", "--private-key", str(tmp_path / "alipay_private.pem"),
                   "--app-id", APP_ID]
        paid = ledger_cli("simulate", *sandbox, "--out-trade-no", "T-1001", env={})
        # The README tour's line, as a newcomer runs it.
        message = ledger_cli("simulate", *sandbox, "--msg-method", "alipay.trade.refund.depositback.completed",
                             "--biz-content", '{"out_trade_no": "T-1001", "out_request_no": "RF-1", '
                                              '"dback_status": "S", "dback_amount": "8.00"}', env={})
        assert (paid.stdout, message.stdout) == ("HTTP 200 success\n", "HTTP 200 success\n"), message.stderr
        row = server.read_order("T-1001", until=lambda row: row["deposit_back_status"] == "S")
        assert row["deposited_back_amount"] == "8.00"
    finally:
        server.stop()
