"""Act exactly like Alipay: keys, notifications signed and form-encoded the way it sends them.

Used by `ledger simulate` and the tests; never on the path of a real notification.
"""

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from ledger.alipay.form import codec_for
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.signature import HASHES, signed_string
from ledger.domain.message import DEPOSIT_BACK

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BUYER_ID = "2088102000000002"


def generate_key_pair() -> tuple[bytes, str]:
    """A fresh RSA-2048 key: (private key as PKCS#8 PEM, public key as the console's one-line base64 DER)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(spki).decode("ascii")


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def sign_params(
    params: dict[str, str], private_key: rsa.RSAPrivateKey, *, sign_type: str = "RSA2", v2: bool = False
) -> dict[str, str]:
    """A copy of `params` with `sign_type` and `sign` added, signed over the V1 (or V2) string."""
    if sign_type not in HASHES:
        raise ValueError(f"unsupported sign_type {sign_type!r}")
    signed = {key: value for key, value in params.items() if key != "sign"}
    signed["sign_type"] = sign_type
    data = signed_string(signed, keep_sign_type=v2).encode(_codec(params))
    signature = private_key.sign(data, PKCS1v15(), HASHES[sign_type]())
    signed["sign"] = base64.b64encode(signature).decode("ascii")
    return signed


def encode_form(params: dict[str, str]) -> bytes:
    """The POST body Alipay would send: form-urlencoded in the notification's own charset."""
    return urlencode(params, encoding=_codec(params)).encode("ascii")


def trade_notification(
    app_id: str,
    out_trade_no: str,
    *,
    trade_status: str = "TRADE_SUCCESS",
    total_amount: str = "88.00",
    seller_id: str = "2088000000000001",
    charset: str = "utf-8",
    notify_id: str | None = None,
    **extra: str | None,
) -> dict[str, str]:
    """An unsigned trade_status_sync notification; `extra` adds or overrides fields, None removes one."""
    now = datetime.now(CHINA_STANDARD_TIME).replace(microsecond=0)
    params = {
        "notify_time": now.strftime(_TIME_FORMAT),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id if notify_id is not None else uuid.uuid4().hex,
        "app_id": app_id,
        "charset": charset,
        "version": "1.0",
        "trade_no": trade_number(out_trade_no),
        "out_trade_no": out_trade_no,
        "trade_status": trade_status,
        "total_amount": total_amount,
        "receipt_amount": total_amount,
        "buyer_pay_amount": total_amount,
        "buyer_id": BUYER_ID,
        "seller_id": seller_id,
        "subject": "测试商品",
        "gmt_create": (now - timedelta(minutes=1)).strftime(_TIME_FORMAT),
        "gmt_payment": (now - timedelta(seconds=30)).strftime(_TIME_FORMAT),
    }
    return _amended(params, extra)


def message_notification(
    app_id: str,
    msg_method: str,
    biz_content: Mapping[str, object] | str,
    *,
    charset: str = "utf-8",
    notify_id: str | None = None,
    **extra: str | None,
) -> dict[str, str]:
    """An unsigned message of the open-platform message service (version 1.1, as Alipay sends them to the app's
    gateway URL): `biz_content` a JSON object, or its text as is; `extra` adds fields (`msg_app_id` for a
    service provider's merchant, the legacy `notify_type`, `notify_time`, `auth_app_id`), None removes one."""
    params = {
        "notify_id": notify_id if notify_id is not None else uuid.uuid4().hex,
        "utc_timestamp": str(int(time.time() * 1000)),
        "msg_method": msg_method,
        "app_id": app_id,
        "version": "1.1",
        "charset": charset,
        "msg_type": "sys",
        "biz_content": biz_content if isinstance(biz_content, str)
        else json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
    }
    return _amended(params, extra)


def deposit_back_message(app_id: str, out_trade_no: str, out_request_no: str, *, dback_status: str = "S",
                         dback_amount: str = "88.00", charset: str = "utf-8", notify_id: str | None = None,
                         **extra: str | None) -> dict[str, str]:
    """An unsigned `alipay.trade.refund.depositback.completed`: the refund `out_request_no` of the order reached
    the buyer's bank card (S, with its amount) or went to the buyer's Alipay balance (F, no amount)."""
    now = datetime.now(CHINA_STANDARD_TIME).replace(microsecond=0)
    biz = {"trade_no": trade_number(out_trade_no), "out_trade_no": out_trade_no,
           "out_request_no": out_request_no, "dback_status": dback_status,
           "bank_ack_time": now.strftime(_TIME_FORMAT),
           "est_bank_receipt_time": (now + timedelta(days=1)).strftime(_TIME_FORMAT)}
    if dback_status == "S":
        biz["dback_amount"] = dback_amount
    return message_notification(app_id, DEPOSIT_BACK, biz, charset=charset,
                                notify_id=notify_id, **extra)


def _amended(params: dict[str, str], extra: Mapping[str, str | None]) -> dict[str, str]:
    for key, value in extra.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def trade_number(out_trade_no: str) -> str:
    """Alipay's `trade_no` of the sandbox's trade `out_trade_no`: re-sends and later notifications of one trade,
    and the stand-in gateway's answers about it, carry the same one, as Alipay's do."""
    digest = hashlib.sha1(out_trade_no.encode("utf-8"), usedforsecurity=False).hexdigest()
    return "2026" + str(int(digest, 16) % 10**24).zfill(24)


def _codec(params: dict[str, str]) -> str:
    codec = codec_for(params.get("charset"))
    if codec is None:
        raise ValueError(f"unsupported charset {params.get('charset')!r}")
    return codec
