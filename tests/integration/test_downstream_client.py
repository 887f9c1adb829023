"""The merchant-facing webhook delivered to local servers: a fake merchant that checks every signature, and raw
servers that redirect, flood or drip their answers."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.adapters.outbound.downstream import DownstreamClient, Outcome, sign
from tests.support.merchant import SECRET, FakeMerchant
from tests.support.outbound import RawServer, answer, drip, flood, redirect

T = 1_700_000_000


def test_a_2xx_answer_is_ok_and_the_merchant_sees_a_valid_signature_and_the_key(merchant: FakeMerchant) -> None:
    outcome = DownstreamClient(merchant.url, SECRET).post({"order": "o1", "change": "payment"}, "o1:payment")
    assert outcome == Outcome(ok=True, status=200, error="")
    [received] = merchant.attempts_for("o1:payment")
    assert received.signature_ok and received.status == 200
    assert received.body == {"order": "o1", "change": "payment"}
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "alipay-ledger"
    assert merchant.keys_succeeded() == {"o1:payment"}


def test_the_signature_is_made_at_send_time_with_the_clients_clock(merchant: FakeMerchant) -> None:
    client = DownstreamClient(merchant.url, SECRET, clock=lambda: T + 0.9)
    outcome = client.post({"order": "o1"}, "o1:payment")
    [received] = merchant.requests
    assert received.headers["Ledger-Signature"] == sign(SECRET, received.raw, T)
    # An hour-old clock is outside the merchant's tolerance: refused, not accepted.
    assert (outcome, received.signature_ok) == (Outcome(False, 401, "HTTP 401"), False)


def test_decimal_datetime_and_chinese_text_round_trip_to_the_merchant(merchant: FakeMerchant) -> None:
    paid_at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    payload = {"total_amount": Decimal("88.8"), "gmt_payment": paid_at, "subject": "测试商品：拿铁咖啡"}
    assert DownstreamClient(merchant.url, SECRET).post(payload, "o2:payment").ok
    [received] = merchant.requests
    assert received.body == {
        "total_amount": "88.80", "gmt_payment": paid_at.isoformat(), "subject": "测试商品：拿铁咖啡",
    }
    assert "拿铁".encode() in received.raw  # UTF-8 on the wire, not \\u escapes
    assert datetime.fromisoformat(received.body["gmt_payment"]) == paid_at


def test_a_503_is_a_failed_attempt_and_the_next_post_can_succeed(merchant: FakeMerchant) -> None:
    merchant.fail_next(1)
    client = DownstreamClient(merchant.url, SECRET)
    assert client.post({"order": "o1"}, "o1:payment") == Outcome(False, 503, "HTTP 503")
    assert client.post({"order": "o1"}, "o1:payment").ok
    assert [r.status for r in merchant.attempts_for("o1:payment")] == [503, 200]


def test_a_redirect_is_a_failure_not_a_resent_request(merchant: FakeMerchant) -> None:
    merchant.always_fail(302)
    outcome = DownstreamClient(merchant.url, SECRET).post({"order": "o1"}, "o1:payment")
    assert outcome == Outcome(False, 302, "HTTP 302 (a redirect, not followed)")
    assert len(merchant.requests) == 1


def test_a_redirect_to_a_server_that_says_delivered_is_a_failed_attempt() -> None:
    with RawServer(answer(200)) as elsewhere, RawServer(redirect(elsewhere.url)) as redirecting:
        outcome = DownstreamClient(redirecting.url, SECRET).post({"order": "o1"}, "o1:payment")
    assert outcome == Outcome(False, 302, "HTTP 302 (a redirect, not followed)")
    assert elsewhere.requests == []


def test_an_answer_over_the_size_cap_is_a_failed_attempt_without_reading_it_all() -> None:
    with RawServer(flood(64 * 1024 * 1024)) as flooding:
        outcome = DownstreamClient(flooding.url, SECRET).post({"order": "o1"}, "o1:payment")
        assert flooding.idle(2)
    assert outcome == Outcome(False, 200, "HTTP 200 answer larger than 65536 bytes")
    assert flooding.cut_off


def test_a_merchant_dripping_its_answer_cannot_hold_an_attempt_past_the_timeout() -> None:
    with RawServer(drip(0.2)) as dripping:  # one byte every 0.2 s of a 200 answer
        started = time.monotonic()
        outcome = DownstreamClient(dripping.url, SECRET, timeout=1.0).post({"order": "o1"}, "o1:payment")
        elapsed = time.monotonic() - started
    assert outcome == Outcome(False, None, "timeout after 1.0 s")
    assert elapsed < 2


def test_a_merchant_slower_than_the_timeout_is_a_timeout(merchant: FakeMerchant) -> None:
    merchant.hang_next(5)
    started = time.monotonic()
    outcome = DownstreamClient(merchant.url, SECRET, timeout=0.3).post({"order": "o1"}, "o1:payment")
    assert (outcome.ok, outcome.status, outcome.error) == (False, None, "timeout after 0.3 s")
    assert time.monotonic() - started < 3
    # The merchant did receive it: the retry is what its idempotency key de-duplicates.
    assert merchant.keys_succeeded() == {"o1:payment"}


def test_a_closed_port_is_connection_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    outcome = DownstreamClient(f"http://127.0.0.1:{port}/hook", SECRET).post({"order": "o1"}, "o1:payment")
    assert outcome == Outcome(False, None, "connection refused")


def test_a_merchant_with_another_secret_answers_401() -> None:
    with FakeMerchant("the merchant's idea of the secret") as other:
        outcome = DownstreamClient(other.url, SECRET).post({"order": "o1"}, "o1:payment")
        assert outcome == Outcome(False, 401, "HTTP 401")
        assert [r.signature_ok for r in other.requests] == [False]
        assert other.keys_succeeded() == set()


def test_errors_and_repr_never_show_the_secret(merchant: FakeMerchant) -> None:
    merchant.always_fail(500)
    client = DownstreamClient(merchant.url, SECRET, timeout=0.5)
    assert SECRET not in client.post({"order": "o1"}, "o1:payment").error
    assert SECRET not in repr(client)


def test_a_header_breaking_idempotency_key_is_a_programming_error(merchant: FakeMerchant) -> None:
    with pytest.raises(ValueError):
        DownstreamClient(merchant.url, SECRET).post({"order": "o1"}, "o1\r\nX-Evil: 1")
    assert merchant.requests == []


def test_the_merchant_records_arrival_times_in_order(merchant: FakeMerchant) -> None:
    client = DownstreamClient(merchant.url, SECRET)
    for _ in range(2):
        client.post({"order": "o1"}, "o1:payment")
    assert merchant.wait_for(lambda: len(merchant.requests) == 2, timeout=1)
    first, second = merchant.requests
    assert first.monotonic <= second.monotonic and abs(first.wall - time.time()) < 60
    assert json.loads(second.raw) == second.body
