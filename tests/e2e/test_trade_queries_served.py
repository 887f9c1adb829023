"""End to end: a real `ledger serve` (the embedded default, its projections child running the sweep and the
query actor) and real `ledger worker` processes on PostgreSQL and Redis, asking the stand-in gateway over HTTP
about a registered order whose notification never comes; the operator's `POST /api/orders/{no}/query`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import Ledger
from ledger.service.application import RegisterOrder
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import StandIn
from tests.support.ledgers import kinds
from tests.support.refs import ref
from tests.support.server import FINANCE_TOKEN, OPERATOR_TOKEN, LedgerServer
from tests.support.waiting import wait_until

MERCHANT_TOKEN = "m-token-0123456789"
TOKENS = f"finance:{FINANCE_TOKEN},operator/alice:{OPERATOR_TOKEN},merchant:{MERCHANT_TOKEN}"


def call(server: LedgerServer, method: str, path: str, token: str, body: dict[str, Any] | None = None
         ) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(server.url + path, method=method, data=json.dumps(body or {}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def asked_about(gateway: StandIn, out_trade_no: str) -> int:
    return sum(out_trade_no in params.get("biz_content", "") for params in gateway.sandbox.requests)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., LedgerServer]]:
    servers: list[LedgerServer] = []

    def serve(env: dict[str, str]) -> LedgerServer:
        server = LedgerServer(env, tmp_path / f"serve-{len(servers)}.log")
        servers.append(server)
        server.wait_ready()
        return server

    yield serve
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_the_embedded_default_finds_a_payment_whose_notification_never_came(
        served: Callable[..., LedgerServer], alipay: SandboxAlipay, alipay_gateway: StandIn, tmp_path: Path) -> None:
    env = {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
           "LEDGER_API_TOKENS": TOKENS, "LEDGER_QUERY_SCHEDULE": "1s,1s,1s", "LEDGER_SWEEP_SECONDS": "0.3"}
    server = served(env)
    out_trade_no = ref("E")
    status, _ = call(server, "POST", "/api/orders", MERCHANT_TOKEN,
                     {"out_trade_no": out_trade_no, "total_amount": "88.00", "subject": "a book"})
    assert status == 201
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")  # paid; no notification ever comes
    row = server.read_order(out_trade_no, until=lambda r: r["status"] == "PAID", seconds=30)
    assert row["paid_via"] == "trade_query" and asked_about(alipay_gateway, out_trade_no) == 1
    code, text = server.notify(alipay.body(out_trade_no))  # it comes after all: recorded, nothing twice
    assert (code, text) == (200, "success")
    row = server.read_order(out_trade_no, until=lambda r: r["callback_count"] == 1)
    assert row["status"] == "PAID" and row["paid_via"] == "trade_query"


@pytest.mark.slow
def test_two_workers_on_redis_ask_about_each_step_once_and_confirm_once(
        redis_prefix: str, make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str,
        alipay: SandboxAlipay, alipay_gateway: StandIn, tmp_path: Path) -> None:
    env = {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": postgres_url, "LEDGER_REDIS_URL": redis_url,
           "LEDGER_REDIS_PREFIX": redis_prefix, "LEDGER_QUERY_SCHEDULE": "1s,1s,1s,1s",
           "LEDGER_SWEEP_SECONDS": "0.2"}
    ledger = make_ledger(postgres_url, **env)
    follower = ledger.follower(poll_seconds=0.1)  # the read model the workers' sweeps read, as `projections run`
    follower.start()
    workers = [subprocess.Popen([sys.executable, "-m", "ledger.cli", "worker", "--threads", "4"],
                                env={"PATH": os.environ["PATH"], **env},
                                stdout=(tmp_path / f"worker-{n}.log").open("w"), stderr=subprocess.STDOUT)
               for n in range(2)]
    try:
        orders = [ref("W") for _ in range(5)]
        for out_trade_no in orders:
            ledger.service.register_order(RegisterOrder(APP_ID, out_trade_no, Decimal("88.00"), "a book"))
            alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00", "WAIT_BUYER_PAY")
        # Two steps answered WAIT_BUYER_PAY (each asked once by one worker), then the buyers pay.
        assert wait_until(lambda: all(kinds(ledger, o).count("TradeQueried") >= 2 for o in orders), seconds=40)
        for out_trade_no in orders:
            alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
        assert wait_until(lambda: all("PaymentConfirmed" in kinds(ledger, o) for o in orders), seconds=40)
        for out_trade_no in orders:
            counted = Counter(kinds(ledger, out_trade_no))
            assert counted["PaymentConfirmed"] == 1
            assert asked_about(alipay_gateway, out_trade_no) == counted["TradeQueried"] == counted["QueryStepTaken"]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(15)
        follower.stop()


@pytest.mark.slow
def test_an_operator_asks_now_over_the_api_and_the_answer_is_in_the_history(
        served: Callable[..., LedgerServer], alipay: SandboxAlipay, alipay_gateway: StandIn, tmp_path: Path) -> None:
    env = {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
           "LEDGER_API_TOKENS": TOKENS, "LEDGER_QUERY_SCHEDULE": "off"}
    server = served(env)
    out_trade_no = ref("A")
    call(server, "POST", "/api/orders", MERCHANT_TOKEN, {"out_trade_no": out_trade_no, "total_amount": "88.00"})
    assert call(server, "POST", f"/api/orders/{out_trade_no}/query", FINANCE_TOKEN)[0] == 403
    status, body = call(server, "POST", f"/api/orders/{out_trade_no}/query", OPERATOR_TOKEN)
    assert status == 200 and body["answered"] and body["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    alipay_gateway.sandbox.add_trade(APP_ID, out_trade_no, "88.00")
    status, body = call(server, "POST", f"/api/orders/{out_trade_no}/query", MERCHANT_TOKEN)
    assert (status, body["trade_status"], body["status"]) == (200, "TRADE_SUCCESS", "PAID")
    alipay_gateway.sandbox.inject(times=1, http_status=503)
    status, body = call(server, "POST", f"/api/orders/{out_trade_no}/query", OPERATOR_TOKEN)
    assert (status, body["answered"], body["error"], body["retryable"]) == (502, False, "unavailable", True)
    assert call(server, "POST", "/api/orders/NO-SUCH-ORDER/query", OPERATOR_TOKEN)[0] == 404
    status, history = call(server, "GET", f"/api/orders/{out_trade_no}/history", OPERATOR_TOKEN)
    assert status == 200
    queried = [e for e in history["events"] if e["type"] in ("TradeQueried", "TradeQueryFailed")]
    assert [e["data"]["who"] for e in queried] == ["operator alice via API", "merchant via API",
                                                   "operator alice via API"]
