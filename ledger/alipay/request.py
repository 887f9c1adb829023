"""The signed request of an open-platform gateway call (`alipay.trade.query`...), as Alipay's own SDKs build it.

Pure: the time comes in, the form body goes out. The rules are alipay-sdk-java-all's
(`AbstractAlipayClient.getRequestHolderWithSign`, `AlipaySignature.getSignContent`): every parameter but `sign`,
`sign_type` included, empty values dropped, sorted by name, `k=v` joined by `&`, raw values, utf-8 bytes,
SHA256withRSA (PKCS#1 v1.5), base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ledger.alipay.signature import signed_string

# Alipay reads `timestamp` in GMT+8 whatever the caller's zone (J `AlipayConstants.DATE_TIMEZONE`); the Python and
# Node SDKs send the host's local time, which on a UTC host is 8 hours off.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
CHARSET = "utf-8"
SIGN_TYPE = "RSA2"
CONTENT_TYPE = f"application/x-www-form-urlencoded;charset={CHARSET}"


def timestamp(at: datetime) -> str:
    """`yyyy-MM-dd HH:mm:ss` in GMT+8 of an aware datetime (a naive one has no zone to convert from)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the clock must give an aware datetime")
    return at.astimezone(CHINA_STANDARD_TIME).strftime(TIMESTAMP_FORMAT)


def biz_json(biz_content: Mapping[str, Any]) -> str:
    """`biz_content` as compact JSON, non-ASCII characters as themselves (as every SDK sends them)."""
    return json.dumps(dict(biz_content), ensure_ascii=False, separators=(",", ":"))


def signed_request(app_id: str, method: str, biz_content: Mapping[str, Any], private_key: RSAPrivateKey, *,
                   at: datetime, app_auth_token: str | None = None, app_cert_sn: str | None = None,
                   alipay_root_cert_sn: str | None = None) -> dict[str, str]:
    """Every parameter of the call, `sign` included: the common ones, `biz_content`, and the optional
    `app_auth_token` (a service provider acting for a merchant) and certificate-mode serial numbers."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": "json",
        "charset": CHARSET,
        "sign_type": SIGN_TYPE,
        "timestamp": timestamp(at),
        "version": "1.0",
        "biz_content": biz_json(biz_content),
    }
    optional = {"app_auth_token": app_auth_token, "app_cert_sn": app_cert_sn,
                "alipay_root_cert_sn": alipay_root_cert_sn}
    params.update({name: value for name, value in optional.items() if value})
    params["sign"] = sign(params, private_key)
    return params


def sign_content(params: Mapping[str, str]) -> str:
    """The string Alipay's gateway verifies a request's `sign` over."""
    return signed_string(dict(params), keep_sign_type=True)


def sign(params: Mapping[str, str], private_key: RSAPrivateKey) -> str:
    signature = private_key.sign(sign_content(params).encode(CHARSET), PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def form_body(params: Mapping[str, str]) -> bytes:
    """The POST body: every parameter form-encoded in utf-8. All of them go in the body, none in the URL, so no
    access log or proxy on the way records the `sign` or an `app_auth_token`; Alipay merges both places."""
    return urlencode(dict(params), encoding=CHARSET).encode("ascii")
