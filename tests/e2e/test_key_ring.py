"""Over HTTP, an app with two Alipay keys (a key change): notifications signed by either are accepted, each
recorded callback names the key that verified it, in the log and in the order's history; certificates
are chosen by `alipay_cert_sn`; an SM2 notification is refused, saying so."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from starlette.testclient import TestClient

from api.app import create_app
from ledger.alipay.keyring import cert_sn, fingerprint
from ledger.alipay.sandbox import encode_form, sign_params, trade_notification
from ledger.bootstrap import Ledger
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.api import FORM, TOKENS, as_role, history
from tests.support.certs import CertifiedAlipay
from tests.support.refs import ref


@pytest.fixture(scope="module")
def new_alipay() -> SandboxAlipay:
    """Alipay's new key, beside the session's (the old one) during a key change."""
    return SandboxAlipay.new()


def spki_pem(key: RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


SETTINGS: dict[str, Callable[[SandboxAlipay, SandboxAlipay], str]] = {
    "two PEM blocks": lambda old, new: spki_pem(old.private_key) + spki_pem(new.private_key),
    "two one-line keys and a comma": lambda old, new: f"{old.public_key_b64},{new.public_key_b64}",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def client_for(make_ledger: Callable[..., Ledger], database_url: str) -> Iterator[Callable[[str], TestClient]]:
    """Factory: a client of the API over a ledger whose LEDGER_ALIPAY_PUBLIC_KEY is the text given."""
    clients: list[TestClient] = []

    def make(public_key: str) -> TestClient:
        ledger = make_ledger(database_url, LEDGER_API_TOKENS=TOKENS, LEDGER_ALIPAY_PUBLIC_KEY=public_key)
        clients.append(TestClient(create_app(ledger, close_on_shutdown=False)).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def recorded_keys(client: TestClient, out_trade_no: str) -> list[str]:
    """The `key` of each CallbackReceived in the order's history, as an auditor reads it over HTTP."""
    response = history(client, out_trade_no)
    assert response.status_code == 200, response.text
    return [event["data"]["key"] for event in response.json()["events"] if event["type"] == "CallbackReceived"]


def notify(client: TestClient, params: dict[str, str]) -> str:
    return client.post("/api/alipay/notify", content=encode_form(params), headers=FORM).text


@pytest.mark.parametrize("setting", SETTINGS)
def test_notifications_signed_by_either_configured_key_are_accepted_and_name_the_key_that_verified_them(
        setting: str, client_for: Callable[[str], TestClient], alipay: SandboxAlipay,
        new_alipay: SandboxAlipay) -> None:
    client = client_for(SETTINGS[setting](alipay, new_alipay))
    out_trade_no = ref()
    for signer in (alipay, new_alipay, alipay):
        assert notify(client, signer.params(out_trade_no)) == "success"
    old_fp, new_fp = (fingerprint(signer.private_key.public_key()) for signer in (alipay, new_alipay))
    assert recorded_keys(client, out_trade_no) == [old_fp, new_fp, old_fp]
    ledger: Ledger = client.app.state.ledger  # type: ignore[attr-defined]
    assert [getattr(event, "key", None) for event in ledger.service.history(APP_ID, out_trade_no)
            if type(event).__name__ == "CallbackReceived"] == [old_fp, new_fp, old_fp]


def test_a_notification_signed_by_a_key_no_longer_configured_is_refused(
        client_for: Callable[[str], TestClient], alipay: SandboxAlipay, new_alipay: SandboxAlipay) -> None:
    client = client_for(new_alipay.public_key_b64)  # the old key retired from the ring
    assert notify(client, alipay.params(ref())) == "fail"
    assert notify(client, new_alipay.params(ref())) == "success"


def test_a_notification_naming_the_new_certificate_is_verified_by_it_while_the_old_one_is_still_configured(
        client_for: Callable[[str], TestClient]) -> None:
    old = CertifiedAlipay.new()
    new = CertifiedAlipay.new(root=old.root, common_name="Test Alipay Public Key RSA2 new")
    client = client_for(old.public_cert_file() + new.public_cert_file())
    out_trade_no = ref()
    for alipay in (new, old):
        params = sign_params(trade_notification(APP_ID, out_trade_no, alipay_cert_sn=cert_sn(alipay.certificate)),
                             alipay.private_key)
        assert notify(client, params) == "success"
    assert recorded_keys(client, out_trade_no) == [fingerprint(new.private_key.public_key()),
                                                   fingerprint(old.private_key.public_key())]


def test_an_sm2_notification_is_refused_and_the_rejected_log_says_sm2_is_not_supported(
        client_for: Callable[[str], TestClient], alipay: SandboxAlipay) -> None:
    client = client_for(alipay.public_key_b64)
    out_trade_no = ref()
    assert notify(client, {**alipay.params(out_trade_no), "sign_type": "SM2"}) == "fail"
    latest = client.get("/api/rejected-callbacks", headers=as_role("operator")).json()["rejected"][0]
    assert (latest["reason"], latest["detail"]) == ("bad_signature",
                                                    "sign_type SM2 is not supported: configure the app for RSA2")
    assert out_trade_no in latest["body"]
