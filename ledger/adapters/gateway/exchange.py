"""One gateway call, both ends of it but the transport: the app's signed request, and the answer believed.

Shared by the real gateway (http) and its twin (memory), so both refuse the same answers for the same reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ledger.alipay.keyring import KeyRing
from ledger.alipay.request import CONTENT_TYPE, form_body, signed_request
from ledger.alipay.response import GatewayAnswer, read_answer
from ledger.domain.errors import GatewayError

# The largest answer read: the calls the ledger makes answer a few kilobytes (a trade query with its fund bills,
# a refund query with its deposit-back details, a bill's download URL), so 1 MiB leaves a hundredfold margin
# while bounding what one call holds in memory and what its event keeps as evidence.
MAX_ANSWER_BYTES = 1024 * 1024
HEADERS = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}


class GatewayApp(Protocol):
    """What a call needs of an app: ledger.config.AlipayApp, read only."""

    @property
    def app_id(self) -> str: ...

    @property
    def keys(self) -> KeyRing: ...

    @property
    def private_key(self) -> RSAPrivateKey | None: ...

    @property
    def app_auth_tokens(self) -> Mapping[str, object]:  # a merchant's (auth_app_id's): str() gives it, repr never
        ...

    @property
    def settings_prefix(self) -> str: ...

    @property
    def app_cert_sn(self) -> str:  # certificate mode: the app's certificate and Alipay's root, else ""
        ...

    @property
    def alipay_root_cert_sn(self) -> str: ...


def app_of(apps: Mapping[str, GatewayApp], app_id: str) -> GatewayApp:
    app = apps.get(app_id)
    if app is None:
        raise GatewayError(f"no app {app_id} is configured", reason="unknown_app", retryable=False)
    return app


def request_body(app: GatewayApp, method: str, biz_content: Mapping[str, Any], at: datetime,
                 merchant: str = "") -> bytes:
    """The form body of the call, signed with the app's private key; for a service provider's `merchant`, with
    that merchant's app_auth_token (and none for the app's own trades)."""
    if app.private_key is None:
        raise GatewayError(f"app {app.app_id} has no private key to sign gateway requests with: set "
                           f"{app.settings_prefix}APP_PRIVATE_KEY (or {app.settings_prefix}APP_PRIVATE_KEY_FILE)",
                           reason="no_private_key", retryable=False)
    token = None
    if merchant:
        if merchant not in app.app_auth_tokens:
            raise GatewayError(f"app {app.app_id} has no app_auth_token for merchant {merchant}: add it to "
                               f"{app.settings_prefix}APP_AUTH_TOKENS", reason="no_auth_token", retryable=False)
        token = str(app.app_auth_tokens[merchant])
    return form_body(signed_request(app.app_id, method, biz_content, app.private_key, at=at, app_auth_token=token,
                                    app_cert_sn=app.app_cert_sn or None,
                                    alipay_root_cert_sn=app.alipay_root_cert_sn or None))


def answer_of(app: GatewayApp, method: str, status: int, body: bytes) -> GatewayAnswer:
    """The verified answer in an HTTP answer's status and body (read whole, within the cap), or GatewayError."""
    if 300 <= status < 400:
        raise GatewayError(f"HTTP {status} from the gateway (a redirect, not followed)", reason="http_error",
                           retryable=False)
    if 400 <= status < 500:
        raise GatewayError(f"HTTP {status} from the gateway", reason="http_error", retryable=False)
    if status >= 500 or status < 200:
        raise GatewayError(f"HTTP {status} from the gateway", reason="unavailable", retryable=True)
    try:
        text = body.decode("utf-8")  # the request's charset, which Alipay answers in
    except UnicodeDecodeError:
        raise GatewayError("the answer is not utf-8 text", reason="malformed", retryable=True,
                           text=body.decode("utf-8", "replace")) from None
    return read_answer(app.app_id, text, method, app.keys)


def too_large(cap: int) -> GatewayError:
    return GatewayError(f"the gateway's answer is larger than {cap} bytes", reason="too_large", retryable=False)
