"""The stand-in for Alipay's gateway (ledger.alipay.sandbox_gateway), served for real on 127.0.0.1:<free port>.

    def test_something(alipay_gateway: StandIn) -> None:
        alipay_gateway.sandbox.add_trade(APP_ID, "T-1", "88.00")            # the buyer paid
        gateway = HttpGateway({APP_ID: alipay_gateway.app()}, alipay_gateway.url, timeout=2, clock=now)
        gateway.call(APP_ID, "alipay.trade.query", {"out_trade_no": "T-1"})  # signed, verified: 10000
        alipay_gateway.sandbox.inject(times=1, http_status=502)             # faults: see Faults
        alipay_gateway.sandbox.requests                                     # what it received, merged
        alipay_gateway.env()  # LEDGER_ALIPAY_GATEWAY_URL and the app's private key, to add to alipay.env()

The answers are signed with the session's sandbox "Alipay" key (the `alipay` fixture's, which also signs the
notifications); the requests are verified with the app's public key (the `app_keys` fixture's).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.datastructures import Secret

from ledger.alipay.keyring import KeyRing, load_key_ring
from ledger.alipay.sandbox_gateway import SandboxGateway
from ledger.cli.sandbox_gateway import GatewayServer
from ledger.config import AlipayApp
from tests.support.alipay import APP_ID, SandboxAlipay

QUERY = "alipay.trade.query"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AppKeys:
    """The merchant app's own key pair: its private key signs requests to the gateway."""

    private_key: rsa.RSAPrivateKey

    @classmethod
    def new(cls) -> AppKeys:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def private_pem(self) -> str:  # PKCS#8, as Alipay's key tool gives it
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()

    @property
    def pkcs1_b64(self) -> str:  # what alipay-sdk-python wants: PKCS#1 DER, base64, no armour
        der = self.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption())
        return base64.b64encode(der).decode()

    @property
    def public_b64(self) -> str:
        der = self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()


def new_sandbox(alipay: SandboxAlipay, app_keys: AppKeys, *, cert_sn: str = "") -> SandboxGateway:
    """A stand-in that knows the app APP_ID by its public key."""
    sandbox = SandboxGateway(alipay.private_key, cert_sn=cert_sn)
    sandbox.add_app(APP_ID, app_keys.private_key.public_key())
    return sandbox


def app(alipay: SandboxAlipay, app_keys: AppKeys, *, app_id: str = APP_ID, keys: KeyRing | None = None,
        private_key: rsa.RSAPrivateKey | None = None, signs: bool = True, app_auth_tokens: dict[str, str] | None = None,
        name: str = "") -> AlipayApp:
    """The ledger's AlipayApp for the app: trusting the sandbox's Alipay key (or `keys`), signing with the app's
    private key (or `private_key`; with none if not `signs`)."""
    return AlipayApp(app_id=app_id, keys=keys or load_key_ring(alipay.public_key_b64),
                     private_key=(private_key or app_keys.private_key) if signs else None,
                     app_auth_tokens={m: Secret(t) for m, t in (app_auth_tokens or {}).items()}, name=name)


@dataclass(frozen=True)
class StandIn:
    sandbox: SandboxGateway
    server: GatewayServer
    alipay: SandboxAlipay
    app_keys: AppKeys

    @property
    def url(self) -> str:
        return self.server.url

    def app(self, **changes: Any) -> AlipayApp:
        return app(self.alipay, self.app_keys, **changes)

    def env(self) -> dict[str, str]:
        return {"LEDGER_ALIPAY_GATEWAY_URL": self.url, "LEDGER_ALIPAY_APP_PRIVATE_KEY": self.app_keys.private_pem}


@contextmanager
def serving(alipay: SandboxAlipay, app_keys: AppKeys, *, cert_sn: str = "") -> Iterator[StandIn]:
    sandbox = new_sandbox(alipay, app_keys, cert_sn=cert_sn)
    with GatewayServer(sandbox, default_app_id=APP_ID) as server:
        yield StandIn(sandbox, server, alipay, app_keys)
