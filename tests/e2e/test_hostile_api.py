"""Operators over HTTP: notifications kept in quarantine, and the streams the read side holds back."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.testclient import TestClient

from api.app import create_app
from ledger.alipay.sandbox import encode_form
from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.parking import legacy_order, run_until_parked

TOKENS = "operator:operator-token-0123456789,finance:finance-token-0123456789"
OPERATOR = {"authorization": "Bearer operator-token-0123456789"}
FINANCE = {"authorization": "Bearer finance-token-0123456789"}


def test_an_unbookable_notification_is_answered_fail_and_shown_to_operators_whole(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    body = encode_form(alipay.params(f"Q{uuid.uuid4().hex[:8]}", gmt_payment="0001-01-01 00:00:00"))
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        answer = client.post("/api/alipay/notify", content=body,
                             headers={"content-type": "application/x-www-form-urlencoded"})
        assert (answer.status_code, answer.text) == (400, "fail")
        assert client.get("/api/quarantined-callbacks", headers=FINANCE).status_code == 403
        kept = client.get("/api/quarantined-callbacks", headers=OPERATOR).json()["quarantined"]
    assert len(kept) == 1 and kept[0]["body"] == body.decode("ascii")
    assert "bad_time" in kept[0]["detail"]


def test_operators_list_parked_streams_and_reapply_one(make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    stream = legacy_order(ledger, f"Q{uuid.uuid4().hex[:8]}")
    run_until_parked(ledger)
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        listed = client.get("/api/projections/parked", headers=OPERATOR).json()["parked"]
        assert [row["stream_id"] for row in listed] == [stream]
        still = client.post(f"/api/projections/parked/{stream}/reapply", headers=OPERATOR)
        assert still.status_code == 409 and "OverflowError" in still.json()["detail"]
        assert client.post(f"/api/projections/parked/{uuid.uuid4()}/reapply", headers=OPERATOR).status_code == 404
        assert client.get("/api/projections/parked", headers=FINANCE).status_code == 403


class BrokenQuarantine:
    def keep(self, item: object) -> bool:
        raise OSError("the disk is gone")

    def latest(self, limit: int = 100) -> list[dict[str, object]]:
        return []


def test_an_unbookable_notification_that_cannot_be_kept_is_answered_503_fail_so_alipay_sends_it_again(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    ledger.service.quarantine = BrokenQuarantine()
    body = encode_form(alipay.params(f"Q{uuid.uuid4().hex[:8]}", total_amount="9999999999999.99"))
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        answer = client.post("/api/alipay/notify", content=body,
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert (answer.status_code, answer.text) == (503, "fail")


def test_an_order_number_or_app_id_holding_a_nul_is_a_400_not_a_database_error(
        make_ledger: Callable[..., Ledger], postgres_url: str) -> None:
    ledger = make_ledger(postgres_url, LEDGER_API_TOKENS=TOKENS)
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        for path, params, reason in (
                ("/api/orders/A%00B", {}, "control_character"), ("/api/orders/A%00B/history", {}, "control_character"),
                ("/api/orders", {"app_id": "\x00"}, "invalid_request"),
                ("/api/orders", {"auth_app_id": "\x00"}, "invalid_request"),
                ("/api/reports/daily", {"from": "2026-11-01", "to": "2026-11-02", "app_id": "\x00"},
                 "invalid_request")):
            headers = OPERATOR if path.endswith("history") else FINANCE
            answer = client.get(path, params=params, headers=headers)
            assert answer.status_code == 400 and answer.json()["error"] == reason, (path, answer.text)


def test_an_operators_note_holding_a_lone_surrogate_is_a_400(make_ledger: Callable[..., Ledger],
                                                             sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        answer = client.post("/api/manual-queue/Q1/resolve", headers={**OPERATOR, "content-type": "application/json"},
                             content=b'{"note": "why\\ud800"}')
    assert answer.status_code == 400 and answer.json()["error"] == "control_character"
