"""The gateway's in-memory twin: signed requests, verified answers and the real client's errors, without HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ledger.adapters.gateway.memory import MemoryGateway
from ledger.alipay.keyring import fingerprint
from ledger.alipay.sandbox_gateway import SandboxGateway
from ledger.config import AlipayApp
from ledger.domain.errors import GatewayError
from ledger.service.ports import Gateway
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import QUERY, AppKeys, app, new_sandbox

AT = datetime(2026, 11, 30, 22, 29, 48, tzinfo=UTC)


@pytest.fixture
def sandbox(alipay: SandboxAlipay, app_keys: AppKeys) -> SandboxGateway:
    return new_sandbox(alipay, app_keys)


@pytest.fixture
def twin(alipay: SandboxAlipay, app_keys: AppKeys, sandbox: SandboxGateway) -> Callable[..., MemoryGateway]:
    def make(*apps: AlipayApp, timeout: float = 2.0) -> MemoryGateway:
        configured = apps or (app(alipay, app_keys),)
        return MemoryGateway({each.app_id: each for each in configured}, sandbox, clock=lambda: AT, timeout=timeout)

    return make


def test_the_twin_is_a_gateway(twin: Callable[..., MemoryGateway]) -> None:
    gateway: Gateway = twin()
    assert callable(gateway.call)


def test_a_paid_trade_is_a_verified_answer(twin: Callable[..., MemoryGateway], sandbox: SandboxGateway,
                                           alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    answer = twin().call(APP_ID, QUERY, {"out_trade_no": "T1"})
    assert answer.ok and answer.fields["trade_status"] == "TRADE_SUCCESS"
    assert answer.key == fingerprint(alipay.private_key.public_key())
    assert answer.text.startswith('{"alipay_trade_query_response":')
    assert sandbox.requests[-1]["timestamp"] == "2026-12-01 06:29:48"  # the clock's, in Beijing


def test_an_unknown_trade_is_an_answer_with_its_sub_code(twin: Callable[..., MemoryGateway]) -> None:
    answer = twin().call(APP_ID, QUERY, {"out_trade_no": "NOPE"})
    assert (answer.ok, answer.code, answer.sub_code) == (False, "40004", "ACQ.TRADE_NOT_EXIST")


@pytest.mark.parametrize(("name", "setting"), [("", "LEDGER_ALIPAY_APP_PRIVATE_KEY"),
                                               ("SHOP2", "LEDGER_ALIPAY_SHOP2_APP_PRIVATE_KEY")])
def test_an_app_without_a_private_key_names_the_setting_and_sends_nothing(
        twin: Callable[..., MemoryGateway], sandbox: SandboxGateway, alipay: SandboxAlipay, app_keys: AppKeys,
        name: str, setting: str) -> None:
    with pytest.raises(GatewayError) as caught:
        twin(app(alipay, app_keys, signs=False, name=name)).call(APP_ID, QUERY, {"out_trade_no": "T1"})
    assert (caught.value.reason, caught.value.retryable) == ("no_private_key", False)
    assert setting in str(caught.value) and sandbox.requests == []


def test_an_app_not_configured_is_refused(twin: Callable[..., MemoryGateway]) -> None:
    with pytest.raises(GatewayError) as caught:
        twin().call("2021000000000999", QUERY, {"out_trade_no": "T1"})
    assert (caught.value.reason, caught.value.retryable) == ("unknown_app", False)


def test_a_service_providers_token_is_sent_and_signed(twin: Callable[..., MemoryGateway], sandbox: SandboxGateway,
                                                      alipay: SandboxAlipay, app_keys: AppKeys) -> None:
    sandbox.grant(APP_ID, "202612BBtoken", merchant="2088000000000101")
    sandbox.add_trade(APP_ID, "T1", "12.00", merchant="2088000000000101")
    answer = twin(app(alipay, app_keys, app_auth_tokens={"2088000000000101": "202612BBtoken"})).call(
        APP_ID, QUERY, {"out_trade_no": "T1"}, merchant="2088000000000101")
    assert answer.fields["total_amount"] == "12.00" and sandbox.requests[-1]["app_auth_token"] == "202612BBtoken"


def test_a_delay_past_the_timeout_is_a_timeout_at_once(twin: Callable[..., MemoryGateway],
                                                       sandbox: SandboxGateway) -> None:
    sandbox.inject(delay=30)
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        twin(timeout=2).call(APP_ID, QUERY, {"out_trade_no": "T1"})
    assert (caught.value.reason, caught.value.retryable) == ("unavailable", True)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("fault", "reason", "retryable"), [
    ({"http_status": 502}, "unavailable", True),
    ({"http_status": 404}, "http_error", False),
    ({"redirect": "https://elsewhere.example/"}, "http_error", False),
    ({"oversized": 1024 * 1024 + 1}, "too_large", False),
    ({"unsigned": True}, "unsigned", False),
    ({"wrong_key": True}, "bad_signature", False),
    ({"tampered": True}, "bad_signature", False),
])
def test_the_stand_ins_faults_are_the_real_clients_errors(twin: Callable[..., MemoryGateway],
                                                          sandbox: SandboxGateway, fault: dict[str, object],
                                                          reason: str, retryable: bool) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    sandbox.inject(times=1, **fault)
    with pytest.raises(GatewayError) as caught:
        twin().call(APP_ID, QUERY, {"out_trade_no": "T1"})
    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert twin().call(APP_ID, QUERY, {"out_trade_no": "T1"}).ok  # healed after one


def test_a_private_key_that_is_not_the_apps_is_refused_by_the_gateway(
        twin: Callable[..., MemoryGateway], alipay: SandboxAlipay) -> None:
    other = AppKeys.new()
    with pytest.raises(GatewayError) as caught:
        twin(app(alipay, other)).call(APP_ID, QUERY, {"out_trade_no": "T1"})
    error = caught.value
    assert (error.reason, error.retryable, error.sub_code) == ("request_refused", False, "isv.invalid-signature")
    assert "does not match the app public key" in str(error) and error.text
