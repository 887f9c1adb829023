"""A gateway answer: the exact text Alipay signed in it, its verification, and what its `code` means.

Alipay answers `{"<method, . → _>_response":{...},"sign":"..."}` (certificate mode adds `"alipay_cert_sn"`) and
signs the response object exactly as sent, from its `{` to the matching `}`: that text is cut out of the
answer, never re-serialised. alipay-sdk-java-all (`JsonConverter.getSignSourceData`) finds it by quote- and
escape-aware brace matching after `"<root>":`, refuses a second `<root>` and falls back to `error_response`;
here the standard library's own JSON scanner walks the answer's top-level members and gives each one's span,
so a brace or a quote inside a string cannot move the boundary, and an answer that is not one JSON object
is refused whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.alipay.keyring import AlipayKey, KeyRing
from ledger.alipay.signature import verify_text
from ledger.domain.errors import GatewayError, SignatureInvalid

SUCCESS_CODE = "10000"
BUSINESS_FAILURE_CODE = "40004"  # a verified answer all the same: `sub_code` says which (ACQ.TRADE_NOT_EXIST...)
UNKNOWN_OUTCOME_CODE = "20000"  # isp.unknow-error: the gateway was busy; asking again may work
# The request itself refused: a missing or invalid signature, app or argument (40001, 40002), no signing key
# configured for the app (40003), no permission for the method (40006), an invalid app_auth_token (20001).
REFUSED_CODES = frozenset({"20001", "40001", "40002", "40003", "40006"})
ERROR_RESPONSE = "error_response"
_HINTS = {
    "isv.invalid-signature": "the app's private key does not match the app public key uploaded to Alipay",
    "isv.invalid-app-id": "no such app at this gateway (production and sandbox app ids differ)",
    "isv.missing-signature-config": "upload the app's RSA2 public key (or certificate) in Alipay's console",
    "aop.invalid-app-auth-token": "the merchant's app_auth_token is invalid or expired: ask for a new grant",
}
_SPACE = re.compile(r"[ \t\n\r]*")
_TOKEN = re.compile(r"(app_auth_token=)[^&\s]*")
_DECODER = json.JSONDecoder(parse_constant=lambda name: _refuse(f"{name} is not JSON"))


@dataclass(frozen=True)
class GatewayAnswer:
    """An answer of Alipay's gateway whose signature verified with the app's Alipay key ring.

    `text` is the whole response body exactly as received (decoded from the request's charset): the evidence,
    re-verifiable by `verify_answer(app_id, text, method, ring)`. `fields` is the response object it signs."""

    app_id: str
    method: str
    text: str
    key: str  # the fingerprint of the Alipay key that verified it
    fields: Mapping[str, Any]

    @property
    def code(self) -> str:
        return str(self.fields.get("code", ""))

    @property
    def sub_code(self) -> str:
        return str(self.fields.get("sub_code", ""))

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS_CODE


def response_key(method: str) -> str:
    """The answer's root member for `method`: `alipay.trade.query` → `alipay_trade_query_response`."""
    return method.replace(".", "_") + "_response"


def signed_content(text: str, method: str) -> tuple[str, str, str]:
    """(the response object's exact text, `sign`, `alipay_cert_sn`), the last two empty when absent.

    The object is the method's `<root>`, or `error_response` when there is none; GatewayError `malformed` when
    `text` is not one JSON object, holds neither, holds one twice, or its response object is no JSON object."""
    members = _members(text)
    root = response_key(method)
    name = root if root in members else ERROR_RESPONSE
    if name not in members:
        raise _malformed(f"the answer has no {root} (nor {ERROR_RESPONSE}) object", text)
    spans = members[name]
    if len(spans) > 1:
        raise _malformed(f"the answer holds {name} {len(spans)} times", text)
    start, end = spans[0]
    if text[start] != "{":
        raise _malformed(f"{name} is not a JSON object (an encrypted answer?)", text)
    return text[start:end], _string(members, "sign", text), _string(members, "alipay_cert_sn", text)


def verify_answer(app_id: str, text: str, method: str, ring: KeyRing) -> GatewayAnswer:
    """The answer of `text` once its signature verifies with a key of `ring`, whatever its code (so a stored
    answer is re-verified from its text alone). GatewayError: `malformed`, `unsigned` (an unsigned answer is a
    configuration error, never business data: isv.invalid-app-id, isv.missing-signature-config...),
    `bad_signature`; each carries the whole answer as `.text`."""
    content, sign, cert_sn = signed_content(text, method)
    fields = _DECODER.decode(content)
    if not sign:
        raise GatewayError(f"unsigned answer, not believed{_claim(fields)}: the gateway had no key for this app or "
                           "request, a configuration error", reason="unsigned", retryable=False, text=text)
    key = _verifying_key(content, sign, ring, cert_sn)
    if key is None:
        raise GatewayError(f"the answer's signature does not verify with the app's Alipay key ring{_claim(fields)}; "
                           "is the configured key Alipay's public key, not the app's own?",
                           reason="bad_signature", retryable=False, text=text)
    return GatewayAnswer(app_id, method, text, key.fingerprint, fields)


def check_code(answer: GatewayAnswer) -> GatewayAnswer:
    """`answer` if it is one to act on (10000, or a 40004 business failure with its `sub_code`), else the
    GatewayError its code means: 20000 retryable (`unavailable`), a refused request not (`request_refused`)."""
    code, fields = answer.code, answer.fields
    if code in (SUCCESS_CODE, BUSINESS_FAILURE_CODE):
        return answer
    said = _said(fields)
    if code == UNKNOWN_OUTCOME_CODE:
        raise GatewayError(f"the gateway could not answer ({said}): ask again later", reason="unavailable",
                           retryable=True, text=answer.text, code=code, sub_code=answer.sub_code)
    if code in REFUSED_CODES:
        hint = _HINTS.get(answer.sub_code)
        raise GatewayError(f"Alipay refused the request ({said})" + (f": {hint}" if hint else ""),
                           reason="request_refused", retryable=False, text=answer.text, code=code,
                           sub_code=answer.sub_code)
    raise GatewayError(f"unexpected answer code ({said})", reason="unexpected_code", retryable=False,
                       text=answer.text, code=code, sub_code=answer.sub_code)


def read_answer(app_id: str, text: str, method: str, ring: KeyRing) -> GatewayAnswer:
    """What a caller of the gateway believes: a verified answer with a code to act on, or GatewayError."""
    return check_code(verify_answer(app_id, text, method, ring))


def _verifying_key(content: str, sign: str, ring: KeyRing, cert_sn: str) -> AlipayKey | None:
    # As alipay-sdk-java-all does, a second try with `\/` unescaped: some of Alipay's front ends escape the
    # slashes of an answer signed without them.
    candidates = [content] + ([content.replace("\\/", "/")] if "\\/" in content else [])
    for candidate in candidates:
        try:
            return verify_text(candidate.encode("utf-8"), sign, "RSA2", ring, cert_sn=cert_sn or None)
        except SignatureInvalid:
            continue
    return None


def _members(text: str) -> dict[str, list[tuple[int, int]]]:
    """The span of each top-level member's value, by name (a name given twice has two)."""
    if not isinstance(text, str):
        raise _malformed("the answer must be text", "")
    members: dict[str, list[tuple[int, int]]] = {}
    try:
        index = _skip(text, 0)
        if text[index:index + 1] != "{":
            raise _malformed("the answer is not a JSON object", text)
        index = _skip(text, index + 1)
        while text[index:index + 1] != "}":
            if text[index:index + 1] != '"':
                raise ValueError("a member name was expected")
            name, index = _DECODER.raw_decode(text, index)
            index = _skip(text, index)
            if text[index:index + 1] != ":":
                raise ValueError("':' was expected")
            start = _skip(text, index + 1)
            _value, end = _DECODER.raw_decode(text, start)
            members.setdefault(name, []).append((start, end))
            index = _skip(text, end)
            if text[index:index + 1] == ",":
                index = _skip(text, index + 1)
                if text[index:index + 1] == "}":
                    raise ValueError("a member was expected after ','")
            elif text[index:index + 1] != "}":
                raise ValueError("',' or '}' was expected")
        if _skip(text, index + 1) != len(text):
            raise ValueError("text follows the answer's object")
    except ValueError as exc:  # json.JSONDecodeError is one
        raise _malformed(f"the answer is not JSON ({exc})", text) from None
    return members


def _skip(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    return match.end() if match else index


def _string(members: dict[str, list[tuple[int, int]]], name: str, text: str) -> str:
    spans = members.get(name, [])
    if len(spans) > 1:
        raise _malformed(f"the answer holds {name} {len(spans)} times", text)
    if not spans:
        return ""
    value = json.loads(text[spans[0][0]:spans[0][1]])
    if not isinstance(value, str):
        raise _malformed(f"{name} is not a string", text)
    return value


def _said(fields: Mapping[str, Any]) -> str:
    """The answer's codes and messages, for a log line or an alert: an invalid-signature answer's `sub_msg`
    shows the string the gateway verified, whose `app_auth_token` is a secret and is left out."""
    parts = [str(fields.get(name, "")) for name in ("code", "msg", "sub_code", "sub_msg")]
    return _TOKEN.sub(r"\1(hidden)", " ".join(part for part in parts if part)) or "no code"


def _claim(fields: Mapping[str, Any]) -> str:
    return f" (it says {_said(fields)})" if fields.get("code") else ""


def _malformed(message: str, text: str) -> GatewayError:
    return GatewayError(message, reason="malformed", retryable=True, text=text)


def _refuse(message: str) -> Any:
    raise ValueError(message)
