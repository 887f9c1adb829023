"""HttpGateway against the stand-in gateway served for real on a local port: answers, faults and refusals."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ledger.adapters.gateway.http import HttpGateway
from ledger.alipay.keyring import KeyRing, fingerprint
from ledger.alipay.response import GatewayAnswer, verify_answer
from ledger.config import AlipayApp
from ledger.domain.errors import GatewayError
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import QUERY, AppKeys, StandIn, now, serving
from tests.support.services import free_port


def gateway(stand_in: StandIn, *apps: AlipayApp, timeout: float = 2.0, url: str | None = None) -> HttpGateway:
    configured = apps or (stand_in.app(),)
    return HttpGateway({each.app_id: each for each in configured}, url or stand_in.url, timeout=timeout, clock=now)


def query(stand_in: StandIn, out_trade_no: str = "T1", **options: Any) -> GatewayAnswer:
    return gateway(stand_in, **options).call(APP_ID, QUERY, {"out_trade_no": out_trade_no})


def refusal(stand_in: StandIn, *apps: AlipayApp, **options: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        gateway(stand_in, *apps, **options).call(APP_ID, QUERY, {"out_trade_no": "T1"})
    return caught.value


def test_a_paid_trade_comes_back_verified_from_a_form_post(alipay_gateway: StandIn, alipay: SandboxAlipay) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "88.00", subject="测试商品 {\"}")
    answer = query(alipay_gateway)
    assert answer.ok and answer.fields["trade_status"] == "TRADE_SUCCESS"
    assert answer.fields["subject"] == "测试商品 {\"}"
    assert answer.key == fingerprint(alipay.private_key.public_key())
    assert verify_answer(APP_ID, answer.text, QUERY, alipay_gateway.app().keys) == answer  # the evidence
    [(method, target, content_type)] = alipay_gateway.server.seen
    assert (method, target, content_type) == ("POST", "/gateway.do",
                                              "application/x-www-form-urlencoded;charset=utf-8")


def test_a_trade_alipay_does_not_know_is_a_business_failure(alipay_gateway: StandIn) -> None:
    answer = query(alipay_gateway, "NOPE")
    assert (answer.ok, answer.code, answer.sub_code) == (False, "40004", "ACQ.TRADE_NOT_EXIST")


def test_a_slow_gateway_is_a_retryable_timeout_within_the_deadline(alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.inject(delay=5)
    started = time.monotonic()
    error = refusal(alipay_gateway, timeout=0.3)
    elapsed = time.monotonic() - started
    assert (error.reason, error.retryable) == ("unavailable", True) and "timeout" in str(error)
    assert 0.3 <= elapsed < 1.5


def test_a_5xx_is_retryable_and_the_next_call_is_answered(alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "88.00")
    alipay_gateway.sandbox.inject(times=1, http_status=503)
    error = refusal(alipay_gateway)
    assert (error.reason, error.retryable) == ("unavailable", True) and "503" in str(error)
    assert query(alipay_gateway).ok


def test_a_gateway_that_is_not_there_is_retryable(alipay_gateway: StandIn) -> None:
    error = refusal(alipay_gateway, url=f"http://127.0.0.1:{free_port()}/gateway.do")
    assert (error.reason, error.retryable) == ("unavailable", True)


def test_a_redirect_is_not_followed(alipay_gateway: StandIn, alipay: SandboxAlipay, app_keys: AppKeys) -> None:
    with serving(alipay, app_keys) as elsewhere:
        alipay_gateway.sandbox.inject(redirect=elsewhere.url)
        error = refusal(alipay_gateway)
    assert (error.reason, error.retryable) == ("http_error", False) and "redirect" in str(error)
    assert not elsewhere.server.seen and len(alipay_gateway.server.seen) == 1


def test_an_answer_over_the_cap_is_refused(alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "88.00")
    alipay_gateway.sandbox.inject(oversized=1024 * 1024 + 1)
    error = refusal(alipay_gateway)
    assert (error.reason, error.retryable) == ("too_large", False)
    alipay_gateway.sandbox.inject(oversized=1024 * 1024)
    assert query(alipay_gateway).ok  # at the cap: taken


def test_an_unsigned_answer_is_refused_with_its_text(alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "88.00")
    alipay_gateway.sandbox.inject(unsigned=True)
    error = refusal(alipay_gateway)
    assert (error.reason, error.retryable) == ("unsigned", False)
    assert error.text.startswith('{"alipay_trade_query_response":{"code":"10000"') and '"sign"' not in error.text


@pytest.mark.parametrize("fault", ["wrong_key", "tampered"])
def test_a_badly_signed_answer_is_refused_with_its_text(alipay_gateway: StandIn, fault: str) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "88.00")
    alipay_gateway.sandbox.inject(**{fault: True})
    error = refusal(alipay_gateway)
    assert (error.reason, error.retryable) == ("bad_signature", False) and '"sign":"' in error.text


def test_the_apps_own_public_key_configured_as_alipays_is_caught(alipay_gateway: StandIn,
                                                                  app_keys: AppKeys) -> None:
    mistaken = alipay_gateway.app(keys=KeyRing.of(app_keys.private_key.public_key()))
    error = refusal(alipay_gateway, mistaken)
    assert (error.reason, error.retryable) == ("bad_signature", False)
    assert "ACQ.TRADE_NOT_EXIST" in str(error) and "not the app's own" in str(error)


def test_an_app_the_gateway_does_not_know_gets_an_unsigned_refusal(alipay_gateway: StandIn) -> None:
    stranger = alipay_gateway.app(app_id="2021000000009999")
    with pytest.raises(GatewayError) as caught:
        gateway(alipay_gateway, stranger).call("2021000000009999", QUERY, {"out_trade_no": "T1"})
    assert (caught.value.reason, caught.value.retryable) == ("unsigned", False)
    assert "isv.invalid-app-id" in caught.value.text and "isv.invalid-app-id" in str(caught.value)


def test_a_private_key_alipay_does_not_have_is_a_refused_request(alipay_gateway: StandIn) -> None:
    error = refusal(alipay_gateway, alipay_gateway.app(private_key=AppKeys.new().private_key))
    assert (error.reason, error.retryable, error.code, error.sub_code) == (
        "request_refused", False, "40002", "isv.invalid-signature")


def test_a_service_providers_app_auth_token_is_passed_in_the_body(alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.grant(APP_ID, "202612BBtoken", merchant="2088000000000101")
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "12.00", merchant="2088000000000101")
    client = gateway(alipay_gateway, alipay_gateway.app(app_auth_tokens={"2088000000000101": "202612BBtoken"}))
    answer = client.call(APP_ID, QUERY, {"out_trade_no": "T1"}, merchant="2088000000000101")
    assert answer.fields["total_amount"] == "12.00"
    assert alipay_gateway.sandbox.requests[-1]["app_auth_token"] == "202612BBtoken"
    assert all("token" not in target for _, target, _ in alipay_gateway.server.seen)  # never in a URL


def test_the_apps_own_trade_is_asked_without_any_merchants_token(alipay_gateway: StandIn) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "12.00")
    client = gateway(alipay_gateway, alipay_gateway.app(app_auth_tokens={"2088000000000101": "202612BBtoken"}))
    assert client.call(APP_ID, QUERY, {"out_trade_no": "T1"}).fields["total_amount"] == "12.00"
    assert "app_auth_token" not in alipay_gateway.sandbox.requests[-1]


def test_a_merchant_without_a_token_of_its_own_is_never_asked_about_with_another(alipay_gateway: StandIn) -> None:
    client = gateway(alipay_gateway, alipay_gateway.app(app_auth_tokens={"2088000000000101": "202612BBtoken"}))
    with pytest.raises(GatewayError) as caught:
        client.call(APP_ID, QUERY, {"out_trade_no": "T1"}, merchant="2088000000000202")
    assert caught.value.reason == "no_auth_token" and "APP_AUTH_TOKENS" in str(caught.value)
    assert alipay_gateway.sandbox.requests == []


def test_an_app_without_a_private_key_calls_nothing(alipay_gateway: StandIn) -> None:
    error = refusal(alipay_gateway, alipay_gateway.app(signs=False))
    assert (error.reason, error.retryable) == ("no_private_key", False)
    assert "LEDGER_ALIPAY_APP_PRIVATE_KEY" in str(error) and not alipay_gateway.server.seen


def test_the_gateway_is_reached_through_the_proxy_of_the_environment(alipay_gateway: StandIn,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T1", "88.00")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{alipay_gateway.server.port}")  # it answers as a proxy
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert query(alipay_gateway, url="http://openapi.alipay.invalid/gateway.do").ok
    [(_, target, _)] = alipay_gateway.server.seen
    assert target == "http://openapi.alipay.invalid/gateway.do"
