"""Operators over HTTP and the CLI: the manual queue, alert counts and Prometheus metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from ledger.bootstrap import Ledger
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.deliveries import job_env
from tests.support.ledgers import kinds
from tests.support.merchant import SECRET, FakeMerchant
from tests.support.robots import FakeDingTalk
from tests.support.waiting import wait_until

# Alice's token is named: what she does is recorded as hers. The unnamed one is recorded by its role alone.
TOKENS = "operator/alice:o-token-of-alice-01, operator:o-token-unnamed-01, finance:f-token-0123456789"
OPERATOR, FINANCE = {"authorization": "Bearer o-token-of-alice-01"}, {"authorization": "Bearer f-token-0123456789"}
UNNAMED_OPERATOR = {"authorization": "Bearer o-token-unnamed-01"}


class Background:
    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def start(self) -> None:
        for part in self.parts:
            part.start()

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()

    def status(self) -> dict[str, object]:
        return {"kind": "test"}


@pytest.fixture
def abandoned(make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay
              ) -> Iterator[tuple[TestClient, Ledger, dict[str, str]]]:
    """A client of a ledger whose merchant system always fails: order OP-1's payment delivery is abandoned."""
    with FakeMerchant(SECRET) as merchant, FakeDingTalk("SECtest0123456789") as robot:
        merchant.always_fail(503)
        env = {**alipay.env(), **job_env(merchant, robot, LEDGER_RETRY_MAX="0"), "LEDGER_DATABASE_URL": sqlite_url,
               "LEDGER_API_TOKENS": TOKENS}
        ledger = make_ledger(sqlite_url, **env)
        background = Background([ledger.follower(poll_seconds=0.1), *ledger.background()])
        with TestClient(create_app(ledger, close_on_shutdown=False, background=background)) as client:
            assert client.post("/api/alipay/notify", content=alipay.body("OP-1"),
                               headers={"content-type": "application/x-www-form-urlencoded"}).text == "success"
            assert wait_until(lambda: len(client.get("/api/manual-queue", headers=OPERATOR).json()["entries"]) == 1)
            yield client, ledger, env


def test_manual_queue_lists_the_abandoned_delivery_and_resolving_it_needs_a_note(
        abandoned: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, _ = abandoned
    entry = client.get("/api/manual-queue", headers=OPERATOR).json()["entries"][0]
    assert (entry["out_trade_no"], entry["change"], entry["state"], entry["attempts"]) == ("OP-1", "payment",
                                                                                             "abandoned", 1)
    assert client.post("/api/manual-queue/OP-1/resolve", json={"note": " "}, headers=OPERATOR).status_code == 400
    done = client.post("/api/manual-queue/OP-1/resolve", json={"note": "paid by bank transfer"}, headers=OPERATOR)
    assert (done.status_code, done.json()["changes"]) == (200, ["payment"])
    assert wait_until(lambda: client.get("/api/manual-queue", headers=OPERATOR).json()["entries"] == [])
    resolved = [e for e in ledger.service.history(APP_ID, "OP-1") if type(e).__name__ == "ManuallyResolved"]
    assert resolved[0].who == "operator alice via API" and resolved[0].note == "paid by bank transfer"
    again = client.post("/api/manual-queue/OP-1/retry", json={"note": "again"}, headers=OPERATOR)
    assert again.status_code == 409


def test_a_retry_asked_with_an_unnamed_token_is_recorded_as_its_role_alone(
        abandoned: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, _ = abandoned
    done = client.post("/api/manual-queue/OP-1/retry", json={"note": "their system is back"},
                       headers=UNNAMED_OPERATOR)
    assert done.status_code == 200, done.text
    asked = [e for e in ledger.service.history(APP_ID, "OP-1") if type(e).__name__ == "ManualRetryRequested"]
    assert asked[0].who == "operator via API"


def test_alert_counts_and_metrics_show_the_failure(abandoned: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, _, _ = abandoned
    assert wait_until(lambda: "delivery_abandoned" in client.get("/api/alerts", headers=OPERATOR).json()["by_kind"])
    assert client.get("/api/alerts", headers=FINANCE).status_code == 403
    assert client.get("/api/manual-queue").status_code == 401
    text = client.get("/metrics").text
    assert 'ledger_notifications_total{outcome="success"} 1.0' in text
    assert "ledger_manual_queue 1.0" in text and 'ledger_deliveries{state="abandoned"} 1.0' in text
    assert 'ledger_projection_lag{projection="order_status"}' in text


def test_cli_lists_and_retries_the_manual_queue(abandoned: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    _, ledger, env = abandoned
    run = [sys.executable, "-m", "ledger.cli", "manual-queue"]
    listed = subprocess.run([*run, "list"], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True,
                            timeout=60)
    assert "OP-1 payment: 1 attempts" in listed.stdout and "1 abandoned deliveries" in listed.stdout, listed.stderr
    retried = subprocess.run([*run, "retry", "OP-1", "--who", "ops"], env={"PATH": os.environ["PATH"], **env},
                             capture_output=True, text=True, timeout=60)
    assert retried.stdout.strip() == "retry: OP-1 payment", retried.stderr
    assert wait_until(lambda: "ManualRetryRequested" in kinds(ledger, "OP-1"))
