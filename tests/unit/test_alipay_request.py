"""The signed request of a gateway call: the reference's vector string, GMT+8 timestamps, the signature."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from ledger.alipay.request import form_body, sign_content, signed_request, timestamp
from tests.support.gateway import AppKeys

# From the reference (alipay-openapi.md, "ran"): what the official SDKs sign for this call.
VECTOR = ("app_id=2021000000000001&biz_content={\"out_trade_no\":\"T1\"}&charset=utf-8&format=json"
          "&method=alipay.trade.query&sign_type=RSA2&timestamp=2026-12-01 06:29:48&version=1.0")
AT = datetime(2026, 11, 30, 22, 29, 48, tzinfo=UTC)  # 06:29:48 the next morning in Beijing


@pytest.fixture
def host_in_new_york() -> Iterator[None]:
    """The process's local zone set far from GMT+8, so a timestamp taken from local time would show."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_the_signed_string_is_the_reference_vector(app_keys: AppKeys) -> None:
    params = signed_request("2021000000000001", "alipay.trade.query", {"out_trade_no": "T1"}, app_keys.private_key,
                            at=AT)
    assert sign_content(params) == VECTOR


def test_the_sign_is_sha256_with_rsa_over_the_utf8_bytes_of_that_string(app_keys: AppKeys) -> None:
    params = signed_request("2021000000000001", "alipay.trade.query", {"out_trade_no": "T1"}, app_keys.private_key,
                            at=AT)
    app_keys.private_key.public_key().verify(base64.b64decode(params["sign"]), VECTOR.encode("utf-8"), PKCS1v15(),
                                             hashes.SHA256())


def test_the_timestamp_is_beijing_time_whatever_the_host_zone(host_in_new_york: None) -> None:
    assert timestamp(AT) == "2026-12-01 06:29:48"
    assert timestamp(AT.astimezone(timezone(timedelta(hours=-5)))) == "2026-12-01 06:29:48"
    assert timestamp(datetime.fromtimestamp(AT.timestamp()).astimezone()) == "2026-12-01 06:29:48"


def test_a_clock_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        timestamp(datetime(2026, 12, 1, 6, 29, 48))


def test_optional_parameters_are_sent_and_signed_only_when_given(app_keys: AppKeys) -> None:
    bare = signed_request("2021", "alipay.trade.query", {"out_trade_no": "T1"}, app_keys.private_key, at=AT,
                          app_auth_token="", app_cert_sn=None)
    assert set(bare) == {"app_id", "method", "format", "charset", "sign_type", "timestamp", "version", "biz_content",
                         "sign"}
    full = signed_request("2021", "alipay.trade.query", {"out_trade_no": "T1"}, app_keys.private_key, at=AT,
                          app_auth_token="202612BB", app_cert_sn="a53c", alipay_root_cert_sn="687b_02fa")
    assert (full["app_auth_token"], full["app_cert_sn"], full["alipay_root_cert_sn"]) == ("202612BB", "a53c",
                                                                                          "687b_02fa")
    assert "&app_auth_token=202612BB&app_cert_sn=a53c&" in "&" + sign_content(full) + "&"
    assert sign_content(full).startswith("alipay_root_cert_sn=687b_02fa&app_auth_token=")


def test_biz_content_is_compact_json_with_its_characters_as_themselves(app_keys: AppKeys) -> None:
    params = signed_request("2021", "alipay.trade.query", {"out_trade_no": "订单 1", "query_options": ["a", "b"]},
                            app_keys.private_key, at=AT)
    assert params["biz_content"] == '{"out_trade_no":"订单 1","query_options":["a","b"]}'


def test_the_form_body_carries_every_parameter_exactly(app_keys: AppKeys) -> None:
    params = signed_request("2021", "alipay.trade.query", {"out_trade_no": "订单+1&2"}, app_keys.private_key, at=AT)
    body = form_body(params)
    assert body.isascii()
    assert dict(parse_qsl(body.decode(), keep_blank_values=True, encoding="utf-8")) == params
