"""The stand-in gateway's logic, without sockets: it checks requests and answers them as Alipay's gateway does."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from ledger.alipay.bill import read_bill
from ledger.alipay.keyring import load_key_ring
from ledger.alipay.request import form_body, sign_content, signed_request
from ledger.alipay.response import GatewayAnswer, signed_content, verify_answer
from ledger.alipay.sandbox import trade_number
from ledger.alipay.sandbox_gateway import Reply, SandboxGateway
from ledger.domain.bill import BILL_METHOD
from ledger.domain.errors import GatewayError
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import QUERY, AppKeys, new_sandbox

ROOT = "alipay_trade_query_response"
AT = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def sandbox(alipay: SandboxAlipay, app_keys: AppKeys) -> SandboxGateway:
    return new_sandbox(alipay, app_keys)


def request(app_keys: AppKeys, biz: dict[str, Any] | None = None, *, app_id: str = APP_ID,
            key: rsa.RSAPrivateKey | None = None, **extra: str) -> dict[str, str]:
    return signed_request(app_id, QUERY, {"out_trade_no": "T1"} if biz is None else biz,
                          key or app_keys.private_key, at=AT, **extra)


def ask(sandbox: SandboxGateway, params: dict[str, str]) -> Reply:
    return sandbox.handle("", form_body(params))


def response(reply: Reply, root: str = ROOT) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(reply.text)[root]
    return fields


def verified(reply: Reply, alipay: SandboxAlipay) -> dict[str, Any]:
    return dict(verify_answer(APP_ID, reply.text, QUERY, load_key_ring(alipay.public_key_b64)).fields)


def test_a_paid_trade_is_answered_with_the_fields_alipay_lists_signed_over_the_exact_object(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    reply = ask(sandbox, request(app_keys))
    assert (reply.status, dict(reply.headers)) == (200, {"Content-Type": "text/html;charset=utf-8"})
    fields = verified(reply, alipay)
    assert fields["code"] == "10000" and fields["msg"] == "Success"
    assert {"trade_no", "out_trade_no", "trade_status", "total_amount", "receipt_amount", "buyer_pay_amount",
            "invoice_amount", "point_amount", "send_pay_date", "buyer_logon_id", "buyer_user_id",
            "fund_bill_list"} <= set(fields)
    assert (fields["trade_status"], fields["total_amount"], fields["receipt_amount"]) == ("TRADE_SUCCESS", "88.00",
                                                                                          "88.00")
    assert fields["trade_no"] == trade_number("T1")  # the trade_no of the sandbox's notifications too
    assert reply.text.startswith('{"alipay_trade_query_response":{"code":"10000","msg":"Success",')


def test_an_unpaid_trade_has_no_payment_date_and_nothing_received(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00", "WAIT_BUYER_PAY")
    fields = verified(ask(sandbox, request(app_keys)), alipay)
    assert (fields["trade_status"], fields["receipt_amount"]) == ("WAIT_BUYER_PAY", "0.00")
    assert "send_pay_date" not in fields and "fund_bill_list" not in fields


def test_an_unknown_trade_is_a_signed_business_failure(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    fields = verified(ask(sandbox, request(app_keys, {"out_trade_no": "NOPE"})), alipay)
    assert (fields["code"], fields["sub_code"], fields["out_trade_no"]) == ("40004", "ACQ.TRADE_NOT_EXIST", "NOPE")


def test_trade_no_finds_the_trade_and_every_number_given_must_match(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    assert verified(ask(sandbox, request(app_keys, {"trade_no": trade_number("T1")})), alipay)["code"] == "10000"
    mismatch = {"trade_no": trade_number("T1"), "out_trade_no": "T2"}
    assert verified(ask(sandbox, request(app_keys, mismatch)), alipay)["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    assert verified(ask(sandbox, request(app_keys, {})), alipay)["sub_code"] == "ACQ.INVALID_PARAMETER"


def test_common_parameters_in_the_query_and_biz_content_in_the_body_are_merged(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    params = request(app_keys)
    biz = params.pop("biz_content")
    reply = sandbox.handle(urlencode(params), urlencode({"biz_content": biz}).encode())
    assert verified(reply, alipay)["code"] == "10000"
    assert sandbox.requests[-1] == {**params, "biz_content": biz}


def test_a_parameter_in_both_places_takes_the_querys_value(sandbox: SandboxGateway, app_keys: AppKeys,
                                                            alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    params = request(app_keys)
    reply = sandbox.handle(urlencode(params), form_body({**params, "biz_content": '{"out_trade_no":"T9"}'}))
    assert verified(reply, alipay)["out_trade_no"] == "T1"


def test_a_request_that_does_not_verify_gets_a_signed_invalid_signature_showing_the_string(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    params = request(app_keys, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    fields = verified(ask(sandbox, params), alipay)
    assert (fields["code"], fields["sub_code"]) == ("40002", "isv.invalid-signature")
    assert fields["sub_msg"].endswith(sign_content(params).replace("&", "&amp;"))


@pytest.mark.parametrize(("change", "code", "sub_code"), [
    ({"app_id": None}, "40001", "isv.missing-app-id"),
    ({"app_id": "2021000000009999"}, "40002", "isv.invalid-app-id"),
])
def test_no_known_app_means_an_unsigned_answer(sandbox: SandboxGateway, app_keys: AppKeys, change: dict[str, Any],
                                               code: str, sub_code: str) -> None:
    params = {name: value for name, value in {**request(app_keys), **change}.items() if value is not None}
    reply = ask(sandbox, params)
    assert (response(reply)["code"], response(reply)["sub_code"]) == (code, sub_code)
    assert signed_content(reply.text, QUERY)[1] == ""


def test_an_app_with_no_key_configured_gets_an_unsigned_missing_signature_config(
        sandbox: SandboxGateway, app_keys: AppKeys) -> None:
    sandbox.add_app("2021000000000002", None)
    reply = ask(sandbox, request(app_keys, app_id="2021000000000002"))
    assert response(reply)["sub_code"] == "isv.missing-signature-config" and '"sign"' not in reply.text


@pytest.mark.parametrize(("change", "sub_code"), [
    ({"sign": None}, "isv.missing-signature"),
    ({"sign_type": None}, "isv.missing-signature-type"),
    ({"sign_type": "SM2"}, "isv.invalid-signature-type"),
    ({"charset": "latin-1"}, "isv.invalid-charset"),
    ({"timestamp": None}, "isv.missing-timestamp"),
    ({"timestamp": "2026-12-01T06:00:00"}, "isv.invalid-timestamp"),
    ({"timestamp": "2026-13-01 06:00:00"}, "isv.invalid-timestamp"),
])
def test_a_known_app_gets_its_refusals_signed(sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay,
                                              change: dict[str, Any], sub_code: str) -> None:
    params = {name: value for name, value in {**request(app_keys), **change}.items() if value is not None}
    text = ask(sandbox, params).text
    method = params.get("method", QUERY)
    fields = verify_answer(APP_ID, text, method, load_key_ring(alipay.public_key_b64)).fields
    assert fields["sub_code"] == sub_code


def test_a_method_it_does_not_know_is_refused(sandbox: SandboxGateway, app_keys: AppKeys,
                                              alipay: SandboxAlipay) -> None:
    params = signed_request(APP_ID, "alipay.trade.nothing", {}, app_keys.private_key, at=AT)
    text = ask(sandbox, params).text
    fields = verify_answer(APP_ID, text, "alipay.trade.nothing", load_key_ring(alipay.public_key_b64)).fields
    assert (fields["code"], fields["sub_code"]) == ("40002", "isv.invalid-method")


def test_without_a_method_the_refusal_is_an_error_response(sandbox: SandboxGateway, app_keys: AppKeys,
                                                           alipay: SandboxAlipay) -> None:
    params = request(app_keys)
    del params["method"]
    reply = ask(sandbox, params)
    assert response(reply, "error_response")["sub_code"] == "isv.missing-method"
    assert verify_answer(APP_ID, reply.text, QUERY, load_key_ring(alipay.public_key_b64)).code == "40001"


def test_a_legacy_rsa_request_is_verified_and_answered_with_sha1(sandbox: SandboxGateway, app_keys: AppKeys,
                                                                 alipay: SandboxAlipay) -> None:
    params = {**request(app_keys), "sign_type": "RSA"}
    signature = app_keys.private_key.sign(sign_content(params).encode(), PKCS1v15(), hashes.SHA1())  # noqa: S303
    params["sign"] = base64.b64encode(signature).decode()
    content, sign, _ = signed_content(ask(sandbox, params).text, QUERY)
    alipay.private_key.public_key().verify(base64.b64decode(sign), content.encode(), PKCS1v15(), hashes.SHA1())  # noqa: S303
    assert json.loads(content)["sub_code"] == "ACQ.TRADE_NOT_EXIST"


def test_a_service_provider_sees_the_trades_of_the_merchant_that_granted_its_token(
        sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay) -> None:
    sandbox.grant(APP_ID, "202612BBtoken", merchant="2088000000000101")
    sandbox.add_trade(APP_ID, "T1", "12.00", merchant="2088000000000101")
    sandbox.add_trade(APP_ID, "T1", "88.00")
    assert verified(ask(sandbox, request(app_keys, app_auth_token="202612BBtoken")), alipay)["total_amount"] == "12.00"
    assert verified(ask(sandbox, request(app_keys)), alipay)["total_amount"] == "88.00"
    refused = verified(ask(sandbox, request(app_keys, app_auth_token="not-granted")), alipay)
    assert (refused["code"], refused["sub_code"]) == ("20001", "aop.invalid-app-auth-token")


def test_in_certificate_mode_the_answer_names_the_certificate_before_the_sign(
        alipay: SandboxAlipay, app_keys: AppKeys) -> None:
    sandbox = new_sandbox(alipay, app_keys, cert_sn="a53c6a9683b032b1698e65a67ecd2d01")
    text = ask(sandbox, request(app_keys)).text
    assert ',"alipay_cert_sn":"a53c6a9683b032b1698e65a67ecd2d01","sign":"' in text
    assert signed_content(text, QUERY)[2] == "a53c6a9683b032b1698e65a67ecd2d01"
    assert verify_answer(APP_ID, text, QUERY, load_key_ring(alipay.public_key_b64)).code == "40004"


# -- faults ----------------------------------------------------------------------------------------------

def test_faults_last_for_the_requests_asked_then_heal(sandbox: SandboxGateway, app_keys: AppKeys) -> None:
    sandbox.inject(times=2, http_status=502)
    assert [ask(sandbox, request(app_keys)).status for _ in range(3)] == [502, 502, 200]
    sandbox.inject(delay=2.5)
    assert [ask(sandbox, request(app_keys)).delay for _ in range(2)] == [2.5, 2.5]
    sandbox.heal()
    assert ask(sandbox, request(app_keys)).delay == 0


def test_each_fault_spoils_the_answer_its_own_way(sandbox: SandboxGateway, app_keys: AppKeys,
                                                  alipay: SandboxAlipay) -> None:
    sandbox.add_trade(APP_ID, "T1", "88.00")
    keys = load_key_ring(alipay.public_key_b64)
    spoilt = {}
    for fault in ({"unsigned": True}, {"wrong_key": True}, {"tampered": True}):
        sandbox.inject(**fault)
        with pytest.raises(GatewayError) as caught:
            verify_answer(APP_ID, ask(sandbox, request(app_keys)).text, QUERY, keys)
        spoilt[next(iter(fault))] = caught.value.reason
    assert spoilt == {"unsigned": "unsigned", "wrong_key": "bad_signature", "tampered": "bad_signature"}
    sandbox.inject(redirect="https://elsewhere.example/gateway.do")
    redirect = ask(sandbox, request(app_keys))
    assert (redirect.status, dict(redirect.headers)["Location"]) == (302, "https://elsewhere.example/gateway.do")
    sandbox.inject(oversized=2 * 1024 * 1024)
    big = ask(sandbox, request(app_keys))
    assert len(big.body) == 2 * 1024 * 1024
    assert verify_answer(APP_ID, big.text, QUERY, keys).code == "10000"  # spaces after the object: still JSON



# -- bills -----------------------------------------------------------------------------------------------

def ask_bill(sandbox: SandboxGateway, app_keys: AppKeys, alipay: SandboxAlipay, day: str) -> GatewayAnswer:
    params = signed_request(APP_ID, BILL_METHOD, {"bill_type": "trade", "bill_date": day}, app_keys.private_key,
                            at=AT)
    return verify_answer(APP_ID, ask(sandbox, params).text, BILL_METHOD, load_key_ring(alipay.public_key_b64))


def test_a_bill_posted_for_the_app_is_of_todays_china_standard_time_day_and_handed_out_by_the_bill_method(
        alipay: SandboxAlipay, app_keys: AppKeys) -> None:
    sandbox = SandboxGateway(alipay.private_key, clock=lambda: datetime(2026, 11, 30, 16, 30, tzinfo=UTC))
    sandbox.add_app(APP_ID, app_keys.private_key.public_key())
    sandbox.bill_base_url = "http://stand-in/sandbox/bills/"
    posted = {"trades": [{"out_trade_no": "T-1001", "amount": "88.00", "fee": "0.53"},
                         {"out_trade_no": "T-1003", "amount": "5.00"}]}
    assert sandbox.post_bill(APP_ID, posted) == (date(2026, 12, 1), 2)  # 16:30 UTC is 00:30 the next day in CST
    answer = ask_bill(sandbox, app_keys, alipay, "2026-12-01")
    token = answer.fields["bill_download_url"].removeprefix("http://stand-in/sandbox/bills/")
    bill = read_bill(sandbox.bill_file(token) or b"")
    assert [(row.trade_no, row.out_trade_no, row.fee) for row in bill.rows] == [
        (trade_number("T-1001"), "T-1001", Decimal("-0.53")), (trade_number("T-1003"), "T-1003", Decimal("0.00"))]


def test_a_bill_body_it_cannot_read_adds_no_bill(sandbox: SandboxGateway, app_keys: AppKeys,
                                                  alipay: SandboxAlipay) -> None:
    with pytest.raises(ValueError, match="amount must be yuan"):
        sandbox.post_bill(APP_ID, {"bill_date": "2026-12-01", "trades": [{"out_trade_no": "T-1", "amount": 5}]})
    assert ask_bill(sandbox, app_keys, alipay, "2026-12-01").sub_code == "isp.bill_not_exist"
