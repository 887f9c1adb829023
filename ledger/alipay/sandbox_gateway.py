"""A stand-in for Alipay's open-platform gateway, beside the sandbox that signs notifications (sandbox.py).

It verifies each request's signature with the app's public key and answers as Alipay does, signed with the
sandbox's Alipay key over the response object's exact text: `{"alipay_trade_query_response":{...},"sign":"..."}`,
with `"alipay_cert_sn"` before the sign in certificate mode. Pure logic, no sockets: `handle(query, body)` takes
a request's URL query string and form body (the official SDKs put the common parameters in the query and
`biz_content` in the body; both are merged, the query's value first, as a servlet's `getParameter` does) and
gives a `Reply`. ledger.cli.sandbox_gateway serves it over HTTP; ledger.adapters.gateway.memory calls it
directly. Faults for tests (`inject`): a delay, an HTTP error, an unsigned, wrongly signed, tampered, redirected
or oversized answer. Used by tests and the demo; never on the path of a real payment.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ledger.alipay.form import codec_for
from ledger.alipay.request import CHINA_STANDARD_TIME, TIMESTAMP_FORMAT, sign_content
from ledger.alipay.response import ERROR_RESPONSE, response_key
from ledger.alipay.sandbox import BUYER_ID, trade_number
from ledger.alipay.sandbox_bill import bill_zip
from ledger.alipay.sandbox_bill_post import bill_trades
from ledger.alipay.signature import HASHES, decode_sign
from ledger.domain.bill import BILL_METHOD
from ledger.domain.errors import SignatureInvalid
from ledger.domain.trade_query import METHOD

PAID = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
HTML = (("Content-Type", "text/html;charset=utf-8"),)  # what Alipay's gateway declares, for a JSON body
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_ARGUMENTS = {"40001": "Missing Required Arguments", "40002": "Invalid Arguments",
              "40003": "Insufficient Conditions", "40004": "Business Failed", "20001": "Insufficient Token Permissions"}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer to write: `delay` seconds after the request, then status, headers and body."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = HTML
    delay: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Faults:
    """What goes wrong with an answer; every field off by default."""

    delay: float = 0.0  # seconds before answering: a client's deadline passes
    http_status: int = 0  # answer this status (502...) with an error page instead
    unsigned: bool = False  # no `sign`
    wrong_key: bool = False  # signed with a key that is not the sandbox's Alipay key
    tampered: bool = False  # the response object changed after it was signed
    redirect: str = ""  # a 302 to this URL
    oversized: int = 0  # the body padded with spaces to this many bytes


@dataclass
class _App:
    public_key: RSAPublicKey | None
    grants: dict[str, str] = field(default_factory=dict)  # app_auth_token -> the merchant it acts for


class SandboxGateway:
    """The gateway: apps (their public keys, the tokens granted to them), trades, and the faults to inject.

    `private_key` stands for Alipay's; `cert_sn` (certificate mode) is the `alipay_cert_sn` of its certificate.
    Trades are held by (app_id, merchant, out_trade_no): the merchant is "" for an app's own trades, or the
    merchant an `app_auth_token` was granted by (service-provider mode)."""

    def __init__(self, private_key: RSAPrivateKey, *, cert_sn: str = "",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.private_key, self.cert_sn, self.clock = private_key, cert_sn, clock
        self._apps: dict[str, _App] = {}
        self._trades: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._faults, self._fault_times = Faults(), -1  # -1: until healed
        self._requests: deque[dict[str, str]] = deque(maxlen=10_000)  # the demo's stand-in runs for hours
        self._lock = threading.Lock()
        self._wrong_key: RSAPrivateKey | None = None
        self._bills: dict[tuple[str, str], bytes] = {}  # (app_id, bill_date) -> the day's trade bill file
        self._downloads: dict[str, bytes] = {}  # a download URL's token -> the file it serves
        self.bill_base_url = ""  # where the files are downloaded from (the server sets it: .../sandbox/bills/)

    # Setting the scene.
    def add_app(self, app_id: str, public_key: RSAPublicKey | None) -> None:
        """An app the gateway knows; without a public key it has no signing configuration (40003)."""
        with self._lock:
            self._apps[app_id] = _App(public_key)

    def grant(self, app_id: str, app_auth_token: str, merchant: str) -> None:
        """`merchant` lets the service provider `app_id` act for it with `app_auth_token`."""
        with self._lock:
            self._apps[app_id].grants[app_auth_token] = merchant

    def add_trade(self, app_id: str, out_trade_no: str, total_amount: str = "88.00",
                  trade_status: str = "TRADE_SUCCESS", *, merchant: str = "", **fields: Any) -> dict[str, Any]:
        """A trade as `alipay.trade.query` reports it (replacing any of the same number: the buyer paid, the trade
        closed...); `fields` add or override answer fields (None removes one)."""
        paid = trade_status in PAID or (trade_status == "TRADE_CLOSED" and "send_pay_date" in fields)
        amount = total_amount if paid else "0.00"
        trade: dict[str, Any] = {
            "buyer_logon_id": "159****5620", "buyer_pay_amount": amount, "buyer_user_id": BUYER_ID,
            "buyer_user_type": "PRIVATE", "invoice_amount": amount, "out_trade_no": out_trade_no,
            "point_amount": "0.00", "receipt_amount": amount, "total_amount": total_amount,
            "trade_no": trade_number(out_trade_no), "trade_status": trade_status,
        }
        if paid:
            trade["send_pay_date"] = self.clock().astimezone(CHINA_STANDARD_TIME).strftime(TIMESTAMP_FORMAT)
            trade["fund_bill_list"] = [{"amount": total_amount, "fund_channel": "ALIPAYACCOUNT"}]
        trade.update(fields)
        trade = {name: value for name, value in sorted(trade.items()) if value is not None}
        with self._lock:
            self._trades[(app_id, merchant, out_trade_no)] = trade
        return dict(trade)

    def add_bill(self, app_id: str, bill_date: str, data: bytes) -> None:
        """The trade bill `alipay.data.dataservice.bill.downloadurl.query` finds for the app's day (yyyy-MM-dd)."""
        with self._lock:
            self._bills[(app_id, bill_date)] = bytes(data)

    def post_bill(self, app_id: str, body: object) -> tuple[date, int]:
        """The bill that `POST /sandbox/bills`'s body describes (ledger.alipay.sandbox_bill_post; the day is today's
        in China Standard Time if not given), built as Alipay builds it and added for the app: (its day, its rows)."""
        today = self.clock().astimezone(CHINA_STANDARD_TIME).date()
        day, trades = bill_trades(body, today)
        self.add_bill(app_id, day.isoformat(), bill_zip(trades, day=day))
        return day, len(trades)

    def bill_file(self, token: str) -> bytes | None:
        """The file a download URL the gateway gave serves (any number of times: Alipay's expire in 30 s)."""
        with self._lock:
            return self._downloads.get(token)

    def trade(self, app_id: str, out_trade_no: str, *, merchant: str = "") -> dict[str, Any] | None:
        with self._lock:
            found = self._trades.get((app_id, merchant, out_trade_no))
            return dict(found) if found else None

    def inject(self, times: int | None = None, **faults: Any) -> None:
        """Faults (see `Faults`) for the next `times` requests, or until `heal()`."""
        with self._lock:
            self._faults, self._fault_times = Faults(**faults), -1 if times is None else times

    def heal(self) -> None:
        self.inject()

    @property
    def requests(self) -> list[dict[str, str]]:
        """Every request's parameters, query and body merged, in arrival order (the last 10,000)."""
        with self._lock:
            return [dict(params) for params in self._requests]

    # Answering.
    def handle(self, query: str, body: bytes) -> Reply:
        faults = self._take_faults()
        if faults.http_status:
            page = f"<html><body><h1>{faults.http_status}</h1>the gateway is not answering</body></html>"
            return Reply(faults.http_status, page.encode(), delay=faults.delay)
        if faults.redirect:
            return Reply(302, b"", (("Location", faults.redirect), *HTML), delay=faults.delay)
        params = _params(query, body)
        with self._lock:
            self._requests.append(params)
        root, fields, signed = self._answer(params)
        sign_type = params.get("sign_type") if params.get("sign_type") in HASHES else "RSA2"
        text = self._render(root, fields, signed=signed, sign_type=str(sign_type), faults=faults)
        data = text.encode("utf-8")
        if faults.oversized > len(data):
            data += b" " * (faults.oversized - len(data))
        return Reply(200, data, delay=faults.delay)

    def _take_faults(self) -> Faults:
        with self._lock:
            faults = self._faults
            if self._fault_times > 0:
                self._fault_times -= 1
            if self._fault_times == 0:
                self._faults, self._fault_times = Faults(), -1
            return faults

    def _answer(self, params: Mapping[str, str]) -> tuple[str, dict[str, Any], bool]:
        """(the response object's name, its fields, whether it is signed), checked in the gateway's order: the
        app first (unsigned answers: no key to sign for it), then the request's signature, then the call."""
        method = params.get("method", "")
        root = response_key(method) if method else ERROR_RESPONSE
        app_id = params.get("app_id", "")
        with self._lock:
            app = self._apps.get(app_id)
        if not app_id:
            return root, _error("40001", "isv.missing-app-id", "缺少AppID参数"), False
        if app is None:
            return root, _error("40002", "isv.invalid-app-id", "无效的AppID参数"), False
        if app.public_key is None:
            return root, _error("40003", "isv.missing-signature-config", "应用未配置对应签名算法的公钥或者证书"), False
        refused = _refusal(params, app.public_key)
        if refused:
            return root, refused, True
        merchant = ""
        token = params.get("app_auth_token", "")
        if token:
            if token not in app.grants:
                return root, _error("20001", "aop.invalid-app-auth-token", "无效的应用授权令牌"), True
            merchant = app.grants[token]
        if method == BILL_METHOD:
            return root, self._bill_url(app_id, params.get("biz_content", "")), True
        if method != METHOD:
            return root, _error("40002", "isv.invalid-method", "不存在的方法名"), True
        return root, self._query(app_id, merchant, params.get("biz_content", "")), True

    def _bill_url(self, app_id: str, biz_content: str) -> dict[str, Any]:
        try:
            biz = json.loads(biz_content)
        except ValueError:
            biz = None
        known = isinstance(biz, dict) and biz.get("bill_type") in ("trade", "signcustomer")
        if not known or not isinstance(biz, dict) or not biz.get("bill_date"):
            return _error("40004", "isv.invalid_arguments", "参数无效")
        with self._lock:
            data = self._bills.get((app_id, str(biz["bill_date"])))
            if data is None:
                return _error("40004", "isp.bill_not_exist", "账单不存在")
            token = secrets.token_urlsafe(16)
            self._downloads[token] = data
        return {"code": "10000", "msg": "Success", "bill_download_url": self.bill_base_url + token}

    def _query(self, app_id: str, merchant: str, biz_content: str) -> dict[str, Any]:
        try:
            biz = json.loads(biz_content)
        except ValueError:
            biz = None
        if not isinstance(biz, dict) or not (biz.get("out_trade_no") or biz.get("trade_no")):
            return _error("40004", "ACQ.INVALID_PARAMETER", "参数无效")
        out_trade_no, trade_no = str(biz.get("out_trade_no") or ""), str(biz.get("trade_no") or "")
        with self._lock:
            mine = [trade for (app, owner, _), trade in self._trades.items() if (app, owner) == (app_id, merchant)]
        # trade_no wins when both are given, as at Alipay; each given one must match.
        found = next((trade for trade in mine if (not trade_no or trade["trade_no"] == trade_no)
                      and (not out_trade_no or trade["out_trade_no"] == out_trade_no)), None)
        if found is None:
            return {**_error("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在"), "buyer_pay_amount": "0.00",
                    "invoice_amount": "0.00", "out_trade_no": out_trade_no, "point_amount": "0.00",
                    "receipt_amount": "0.00"}
        return {"code": "10000", "msg": "Success", **found}

    def _render(self, root: str, fields: dict[str, Any], *, signed: bool, sign_type: str, faults: Faults) -> str:
        content = _json(fields)
        members = [f"{_json(root)}:{content}"]
        if signed and not faults.unsigned:
            key = self._other_key() if faults.wrong_key else self.private_key
            sign = base64.b64encode(key.sign(content.encode("utf-8"), PKCS1v15(), HASHES[sign_type]())).decode()
            if faults.tampered:
                changed = dict(fields, **({"total_amount": "0.01"} if "total_amount" in fields else {"msg": "Fine"}))
                members = [f"{_json(root)}:{_json(changed)}"]
            if self.cert_sn:
                members.append(f'"alipay_cert_sn":{_json(self.cert_sn)}')
            members.append(f'"sign":{_json(sign)}')
        return "{" + ",".join(members) + "}"

    def _other_key(self) -> RSAPrivateKey:
        with self._lock:
            if self._wrong_key is None:
                self._wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._wrong_key


def _params(query: str, body: bytes) -> dict[str, str]:
    """The request's parameters, the query's first, each decoded once in the request's charset (utf-8 if it
    names none it can be read in: the answer then says the charset is wrong)."""
    raw = query + "&" + body.decode("latin-1")
    charset = dict(parse_qsl(raw, encoding="latin-1")).get("charset")
    codec = codec_for(charset) or "utf-8"
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True, encoding=codec, errors="replace"):
        params.setdefault(name, value)
    return params


def _refusal(params: Mapping[str, str], public_key: RSAPublicKey) -> dict[str, Any] | None:
    """The gateway's answer to a request it refuses, or None when the request's form and signature check out."""
    if not params.get("method"):
        return _error("40001", "isv.missing-method", "缺少方法名参数")
    if not params.get("sign"):
        return _error("40001", "isv.missing-signature", "缺少签名参数")
    sign_type = params.get("sign_type", "")
    if not sign_type:
        return _error("40001", "isv.missing-signature-type", "缺少签名类型参数")
    if sign_type not in HASHES:
        return _error("40002", "isv.invalid-signature-type", "无效的签名类型")
    codec = codec_for(params.get("charset"))
    if codec is None:
        return _error("40002", "isv.invalid-charset", "字符集错误")
    stamp = params.get("timestamp", "")
    if not stamp:
        return _error("40001", "isv.missing-timestamp", "缺少时间戳参数")
    if not _TIMESTAMP.match(stamp) or not _parses(stamp):
        return _error("40002", "isv.invalid-timestamp", "非法的时间戳参数")
    content = sign_content(params)
    try:
        public_key.verify(decode_sign(params["sign"]), content.encode(codec), PKCS1v15(), HASHES[sign_type]())
    except (InvalidSignature, SignatureInvalid, ValueError):  # ValueError: not encodable in the charset
        # Alipay's answer shows the string it verified, HTML-escaped, to help the caller find its mistake.
        return _error("40002", "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，"
                      "网关生成的验签字符串为：" + content.replace("&", "&amp;"))
    return None


def _parses(stamp: str) -> bool:
    try:
        datetime.strptime(stamp, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def _error(code: str, sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {"code": code, "msg": _ARGUMENTS[code], "sub_code": sub_code, "sub_msg": sub_msg}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

