"""Alipay's official Python SDK (`alipay-sdk-python`, module alipay.aop.api) as the oracle of the stand-in gateway
and of the ledger's own request signing.

- The SDK accepts every answer the stand-in signs: `DefaultAlipayClient`'s own response parser (its private
  `__parse_response`, which cuts the text out by regex and checks it with `SignatureUtils.verify_with_rsa`) and,
  for certificate-mode answers that parser cannot read ("response shape maybe illegal"), the SDK's brace matcher
  (`__extract_json_object_end_position`) with the same `verify_with_rsa`. It refuses what the stand-in spoils.
- The stand-in accepts the requests the SDK signs: parameters assembled and signed by the client's own
  `__prepare_request` (`get_sign_content`, `sign_with_rsa2`), posted as `WebUtils.do_post` posts them (common
  parameters in the query of an absolute-form target, `biz_content` in the body). The SDK's own HTTP call
  cannot be used: it cannot call a URL with a port (`get_http_connection` adds the port to a str).
- The ledger's signed string and sign are the SDK's, byte for byte (RSA PKCS#1 v1.5 signatures are
  deterministic), and the SDK verifies them with the app's public key.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.constant.CommonConstants import PATTERN_RESPONSE_BEGIN, THREAD_LOCAL
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.response.AlipayTradeQueryResponse import AlipayTradeQueryResponse
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from alipay.aop.api.util.WebUtils import url_encode

from ledger.alipay.keyring import load_key_ring
from ledger.alipay.request import form_body, sign_content, signed_request
from ledger.alipay.response import signed_content, verify_answer
from ledger.alipay.sandbox_gateway import SandboxGateway
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import QUERY, AppKeys, StandIn, new_sandbox

AT = datetime(2026, 11, 30, 22, 29, 48, tzinfo=UTC)
MERCHANT, TOKEN = "2088000000000101", "202612BBtoken"


def sdk_client(alipay: SandboxAlipay, app_keys: AppKeys, url: str = "https://openapi.alipay.com/gateway.do",
               *, private_key: str | None = None) -> DefaultAlipayClient:
    config = AlipayClientConfig()
    config.server_url, config.app_id = url, APP_ID
    config.app_private_key = private_key or app_keys.pkcs1_b64
    config.alipay_public_key = alipay.public_key_b64
    THREAD_LOCAL.uuid, THREAD_LOCAL.logger = "oracle", None  # what DefaultAlipayClient.execute would set first
    return DefaultAlipayClient(config)


def sdk_parse(client: DefaultAlipayClient, body: bytes) -> str:
    """The SDK's own parse of an answer: its response object text, once verify_with_rsa accepted it."""
    content: str = client._DefaultAlipayClient__parse_response(body)
    return content


def sdk_extract(client: DefaultAlipayClient, text: str) -> str:
    """The response object as the SDK's brace matcher cuts it out (its path for answers it does not verify)."""
    begin = PATTERN_RESPONSE_BEGIN.search(text)
    assert begin is not None
    end: int = client._DefaultAlipayClient__extract_json_object_end_position(text, begin.end() - 1)
    return text[begin.end() - 1:end]


# -- the SDK accepts every answer the stand-in signs -----------------------------------------------------

def _ours(app_keys: AppKeys, biz: dict[str, Any], **options: Any) -> dict[str, str]:
    method = options.pop("method", QUERY)
    key = options.pop("key", app_keys.private_key)
    return signed_request(APP_ID, method, biz, key, at=AT, **options)


SCENARIOS: dict[str, Callable[[AppKeys], dict[str, str]]] = {
    "paid, odd characters in a field": lambda keys: _ours(keys, {"out_trade_no": "PAID"}),
    "waiting for the buyer": lambda keys: _ours(keys, {"out_trade_no": "WAITING"}),
    "closed": lambda keys: _ours(keys, {"out_trade_no": "CLOSED"}),
    "by trade_no": lambda keys: _ours(keys, {"trade_no": "2026000000000000000000000001"}),
    "trade not exist": lambda keys: _ours(keys, {"out_trade_no": "NOPE"}),
    "invalid parameter": lambda keys: _ours(keys, {}),
    "service provider": lambda keys: _ours(keys, {"out_trade_no": "ISV"}, app_auth_token=TOKEN),
    "token not granted": lambda keys: _ours(keys, {"out_trade_no": "ISV"}, app_auth_token="nope"),
    "invalid signature": lambda keys: _ours(keys, {"out_trade_no": "PAID"}, key=AppKeys.new().private_key),
    "missing signature": lambda keys: {k: v for k, v in _ours(keys, {"out_trade_no": "PAID"}).items() if k != "sign"},
    "unknown method": lambda keys: _ours(keys, {}, method="alipay.trade.nothing"),
    "error_response": lambda keys: {k: v for k, v in _ours(keys, {}).items() if k != "method"},
}


def scene(alipay: SandboxAlipay, app_keys: AppKeys, *, cert_sn: str = "") -> SandboxGateway:
    sandbox = new_sandbox(alipay, app_keys, cert_sn=cert_sn)
    sandbox.add_trade(APP_ID, "PAID", "88.00", subject='测试商品 {"a":"}"} \\ / \\/ é')
    sandbox.add_trade(APP_ID, "WAITING", "1.00", "WAIT_BUYER_PAY")
    sandbox.add_trade(APP_ID, "CLOSED", "2.50", "TRADE_CLOSED")
    sandbox.add_trade(APP_ID, "BY-NUMBER", "3.00", trade_no="2026000000000000000000000001")
    sandbox.grant(APP_ID, TOKEN, MERCHANT)
    sandbox.add_trade(APP_ID, "ISV", "12.00", merchant=MERCHANT)
    return sandbox


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_sdk_accepts_every_answer_the_stand_in_signs(alipay: SandboxAlipay, app_keys: AppKeys,
                                                         name: str) -> None:
    params = SCENARIOS[name](app_keys)
    body = scene(alipay, app_keys).handle("", form_body(params)).body
    client = sdk_client(alipay, app_keys)
    content = sdk_parse(client, body)  # raises ResponseException unless verify_with_rsa accepts
    method = params.get("method", QUERY)
    assert content == signed_content(body.decode(), method)[0] == sdk_extract(client, body.decode())
    ours = verify_answer(APP_ID, body.decode(), method, load_key_ring(alipay.public_key_b64))
    assert ours.fields == json.loads(content)
    sdk_answer = AlipayTradeQueryResponse()
    sdk_answer.parse_response_content(content)
    assert sdk_answer.code and (sdk_answer.code == "10000") == sdk_answer.is_success()


@pytest.mark.parametrize("name", ["paid, odd characters in a field", "trade not exist", "invalid signature"])
def test_the_sdk_verifies_certificate_mode_answers_where_it_finds_them(alipay: SandboxAlipay, app_keys: AppKeys,
                                                                       name: str) -> None:
    sandbox = scene(alipay, app_keys, cert_sn="a53c6a9683b032b1698e65a67ecd2d01")
    text = sandbox.handle("", form_body(SCENARIOS[name](app_keys))).text
    client = sdk_client(alipay, app_keys)
    content, sign, cert_sn = signed_content(text, QUERY)
    assert sdk_extract(client, text) == content and cert_sn == "a53c6a9683b032b1698e65a67ecd2d01"
    assert verify_with_rsa(alipay.public_key_b64, content.encode("utf-8"), sign)


@pytest.mark.parametrize("fault", ["wrong_key", "tampered", "unsigned"])
def test_the_sdk_refuses_what_the_stand_in_spoils(alipay: SandboxAlipay, app_keys: AppKeys, fault: str) -> None:
    sandbox = scene(alipay, app_keys)
    sandbox.inject(**{fault: True})
    body = sandbox.handle("", form_body(SCENARIOS["paid, odd characters in a field"](app_keys))).body
    with pytest.raises(ResponseException):
        sdk_parse(sdk_client(alipay, app_keys), body)


# -- the stand-in accepts the requests the SDK signs -----------------------------------------------------

def sdk_post(client: DefaultAlipayClient, url: str, request: AlipayTradeQueryRequest) -> bytes:
    """What DefaultAlipayClient.execute sends, as WebUtils.do_post sends it, to a URL with a port."""
    query_string, params = client._DefaultAlipayClient__prepare_request(request)
    headers = {"Content-type": "application/x-www-form-urlencoded;charset=utf-8", "Cache-Control": "no-cache",
               "Connection": "Keep-Alive", "User-Agent": "alipay-sdk-python-3.7.1411.ALL", "log-uuid": "oracle"}
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=5)
    try:
        connection.request("POST", f"{url}?{query_string}", body=url_encode(params, "utf-8"), headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        connection.close()


def query_request(out_trade_no: str, **extra: str) -> AlipayTradeQueryRequest:
    model = AlipayTradeQueryModel()
    model.out_trade_no = out_trade_no
    request = AlipayTradeQueryRequest(biz_model=model)
    for name, value in extra.items():
        request.add_other_text_param(name, value)
    return request


def test_the_stand_in_accepts_a_request_signed_by_the_sdk(alipay_gateway: StandIn, alipay: SandboxAlipay,
                                                          app_keys: AppKeys) -> None:
    alipay_gateway.sandbox.add_trade(APP_ID, "T-SDK", "66.00", subject="测试商品")
    client = sdk_client(alipay, app_keys, alipay_gateway.url)
    content = sdk_parse(client, sdk_post(client, alipay_gateway.url, query_request("T-SDK")))
    answer = AlipayTradeQueryResponse()
    answer.parse_response_content(content)
    assert (answer.code, answer.trade_status, answer.total_amount) == ("10000", "TRADE_SUCCESS", "66.00")
    [(method, target, _)] = alipay_gateway.server.seen
    received = alipay_gateway.sandbox.requests[-1]
    assert method == "POST" and "sign=" in target and "biz_content" not in target  # as the SDK splits them
    assert json.loads(received["biz_content"]) == {"out_trade_no": "T-SDK"}


def test_the_stand_in_passes_the_sdks_app_auth_token(alipay_gateway: StandIn, alipay: SandboxAlipay,
                                                     app_keys: AppKeys) -> None:
    alipay_gateway.sandbox.grant(APP_ID, TOKEN, MERCHANT)
    alipay_gateway.sandbox.add_trade(APP_ID, "T-ISV", "12.00", merchant=MERCHANT)
    client = sdk_client(alipay, app_keys, alipay_gateway.url)
    body = sdk_post(client, alipay_gateway.url, query_request("T-ISV", app_auth_token=TOKEN))
    assert json.loads(sdk_parse(client, body))["total_amount"] == "12.00"
    assert alipay_gateway.sandbox.requests[-1]["app_auth_token"] == TOKEN


def test_the_stand_in_refuses_an_sdk_request_signed_with_another_key(alipay_gateway: StandIn, alipay: SandboxAlipay,
                                                                     app_keys: AppKeys) -> None:
    client = sdk_client(alipay, app_keys, alipay_gateway.url, private_key=AppKeys.new().pkcs1_b64)
    refused = json.loads(sdk_parse(client, sdk_post(client, alipay_gateway.url, query_request("T-SDK"))))
    assert (refused["code"], refused["sub_code"]) == ("40002", "isv.invalid-signature")


# -- the ledger signs as the SDK does --------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"app_auth_token": TOKEN},
                                     {"app_cert_sn": "a53c", "alipay_root_cert_sn": "687b_02fa"}])
def test_the_ledgers_request_is_signed_exactly_as_the_sdk_signs_it(app_keys: AppKeys,
                                                                   options: dict[str, str]) -> None:
    params = signed_request(APP_ID, QUERY, {"out_trade_no": "订单-1", "query_options": ["trade_settle_info"]},
                            app_keys.private_key, at=AT, **options)
    unsigned = {name: value for name, value in params.items() if name != "sign"}
    assert get_sign_content(unsigned) == sign_content(params)
    assert sign_with_rsa2(app_keys.pkcs1_b64, get_sign_content(unsigned), "utf-8") == params["sign"]
    assert verify_with_rsa(app_keys.public_b64, sign_content(params).encode("utf-8"), params["sign"])
