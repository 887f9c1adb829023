"""Certificate mode in the settings: Alipay's certificates as the app's key ring, the root file that must be
their chain's root, the serial numbers requests carry, and what stops start-up with a message saying so."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger.alipay.keyring import cert_sn, fingerprint
from ledger.alipay.sandbox import generate_key_pair, load_private_key
from ledger.config import Settings, SettingsError
from tests.support.certs import SM2_CERTIFICATE, SM2_PUBLIC_KEY, SM2_ROOT, CertifiedAlipay, pem

APP_ID = "2021000000000001"
SHOP2_APP_ID = "2021000000000002"


@pytest.fixture(scope="module")
def alipay() -> CertifiedAlipay:
    return CertifiedAlipay.new()


@pytest.fixture(scope="module")
def app_key() -> bytes:
    """The app's own private key (PEM)."""
    return generate_key_pair()[0]


@pytest.fixture(scope="module")
def app_certificate(alipay: CertifiedAlipay, app_key: bytes) -> str:
    """appCertPublicKey_<APPID>.crt: the app's key, certified under Alipay's root."""
    return pem(alipay.intermediate.issue(load_private_key(app_key).public_key(), f"Test app {APP_ID}"))


def cert_env(alipay: CertifiedAlipay, prefix: str = "LEDGER_ALIPAY_", app_id: str = APP_ID, **extra: str
             ) -> dict[str, str]:
    return {f"{prefix}APP_ID": app_id, f"{prefix}PUBLIC_KEY": alipay.public_cert_file(),
            f"{prefix}ROOT_CERT": alipay.root_cert_file(), **{prefix + k: v for k, v in extra.items()}}


def problems_of(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def test_public_key_mode_carries_no_certificate_serial_numbers() -> None:
    app = Settings.from_env({"LEDGER_ALIPAY_APP_ID": APP_ID, "LEDGER_ALIPAY_PUBLIC_KEY": generate_key_pair()[1]}
                            ).apps[APP_ID]
    assert (app.app_cert_sn, app.alipay_root_cert_sn, app.app_cert) == ("", "", None)


def test_certificate_mode_gives_the_alipay_certificate_and_the_serial_numbers_requests_carry(
        alipay: CertifiedAlipay, app_key: bytes, app_certificate: str) -> None:
    app = Settings.from_env(cert_env(alipay, APP_CERT=app_certificate, APP_PRIVATE_KEY=app_key.decode())).apps[APP_ID]
    [key] = app.keys.keys
    assert (key.cert_sn, key.not_after) == (cert_sn(alipay.certificate), alipay.certificate.not_valid_after_utc)
    assert app.alipay_root_cert_sn == cert_sn(alipay.root.certificate)  # the SM2 root of the file left out
    assert app.app_cert is not None and app.app_cert_sn == app.app_cert.cert_sn
    assert app.app_cert_sn == cert_sn(pem_certificate(app_certificate))


def pem_certificate(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(text.encode())


def test_the_root_and_app_certificates_are_read_from_the_files_named(
        alipay: CertifiedAlipay, app_certificate: str, tmp_path: Path) -> None:
    (tmp_path / "alipayRootCert.crt").write_text(alipay.root_cert_file())
    (tmp_path / "appCertPublicKey.crt").write_text(app_certificate)
    env = {**cert_env(alipay), "LEDGER_ALIPAY_ROOT_CERT": "",
           "LEDGER_ALIPAY_ROOT_CERT_FILE": str(tmp_path / "alipayRootCert.crt"),
           "LEDGER_ALIPAY_APP_CERT_FILE": str(tmp_path / "appCertPublicKey.crt")}
    app = Settings.from_env(env).apps[APP_ID]
    assert (app.alipay_root_cert_sn, app.app_cert_sn) == (cert_sn(alipay.root.certificate),
                                                          cert_sn(pem_certificate(app_certificate)))
    missing = str(tmp_path / "missing.crt")
    assert (f"LEDGER_ALIPAY_ROOT_CERT_FILE cannot be read: No such file or directory: {missing}"
            in problems_of({**env, "LEDGER_ALIPAY_ROOT_CERT_FILE": missing}))
    assert ("set LEDGER_ALIPAY_APP_CERT or LEDGER_ALIPAY_APP_CERT_FILE, not both"
            in problems_of({**env, "LEDGER_ALIPAY_APP_CERT": app_certificate}))


def test_each_app_has_its_own_certificates(alipay: CertifiedAlipay) -> None:
    other = CertifiedAlipay.new()
    env = {**cert_env(alipay), **cert_env(other, "LEDGER_ALIPAY_SHOP2_", SHOP2_APP_ID), "LEDGER_ALIPAY_APPS": "shop2"}
    apps = Settings.from_env(env).apps
    assert apps[SHOP2_APP_ID].alipay_root_cert_sn == cert_sn(other.root.certificate)
    assert apps[SHOP2_APP_ID].keys.keys[0].cert_sn == cert_sn(other.certificate)
    assert apps[APP_ID].alipay_root_cert_sn == cert_sn(alipay.root.certificate)


def test_an_alipay_certificate_that_does_not_chain_to_the_root_file_stops_start_up(alipay: CertifiedAlipay) -> None:
    stranger = CertifiedAlipay.new()
    problems = problems_of({**cert_env(alipay), "LEDGER_ALIPAY_ROOT_CERT": stranger.root_cert_file()})
    subject, sn = alipay.certificate.subject.rfc4514_string(), cert_sn(alipay.certificate)
    assert (f"LEDGER_ALIPAY_PUBLIC_KEY of app {APP_ID}: certificate {subject} (SN {sn}) does not chain to a root "
            "of LEDGER_ALIPAY_ROOT_CERT: " in problems)


def test_the_chain_is_checked_for_every_certificate_of_the_ring(alipay: CertifiedAlipay) -> None:
    old_from_elsewhere = CertifiedAlipay.new()
    env = {**cert_env(alipay), "LEDGER_ALIPAY_PUBLIC_KEY": old_from_elsewhere.public_cert_file() +
           alipay.public_cert_file()}
    problems = problems_of(env)
    assert f"(SN {cert_sn(old_from_elsewhere.certificate)}) does not chain" in problems
    assert f"(SN {cert_sn(alipay.certificate)})" not in problems


SM2_REFUSED = ("this is an SM2 (EC) certificate; the ledger verifies RSA2: use the RSA2 certificate "
               "alipayCertPublicKey_RSA2.crt")


@pytest.mark.parametrize(("given", "reason"), [
    (SM2_CERTIFICATE, SM2_REFUSED),
    (SM2_PUBLIC_KEY, "this is an SM2 (EC) key; the ledger verifies RSA2: configure Alipay's RSA2 public key"),
    (SM2_ROOT, SM2_REFUSED),
    (None, "this is a root/CA certificate (alipayRootCert.crt); configure Alipay's public-key certificate"),
])
def test_an_sm2_or_root_certificate_given_as_alipays_stops_start_up_saying_so(
        given: str | None, reason: str, alipay: CertifiedAlipay) -> None:
    env = cert_env(alipay, PUBLIC_KEY=given if given is not None else pem(alipay.root.certificate))
    assert f"LEDGER_ALIPAY_PUBLIC_KEY of app {APP_ID}: {reason}" in problems_of(env)


def test_the_whole_root_file_given_as_alipays_key_is_refused_at_its_first_certificate(alipay: CertifiedAlipay) -> None:
    env = cert_env(alipay, PUBLIC_KEY=alipay.root_cert_file())
    assert (f"LEDGER_ALIPAY_PUBLIC_KEY of app {APP_ID}: key 1 of 2: this is a root/CA certificate (alipayRootCert.crt)"
            in problems_of(env))


def test_an_expired_alipay_certificate_stops_start_up_even_without_a_root_file() -> None:
    expired = CertifiedAlipay.new(expires_in=timedelta(days=-2))
    env = {"LEDGER_ALIPAY_APP_ID": APP_ID, "LEDGER_ALIPAY_PUBLIC_KEY": expired.public_cert_file()}
    assert (f"LEDGER_ALIPAY_PUBLIC_KEY of app {APP_ID}: certificate {expired.certificate.subject.rfc4514_string()} "
            f"(SN {cert_sn(expired.certificate)}) expired on {expired.certificate.not_valid_after_utc:%Y-%m-%d}: "
            "configure Alipay's current certificate" in problems_of(env))


def test_an_expired_app_certificate_stops_start_up(alipay: CertifiedAlipay) -> None:
    app_key = load_private_key(generate_key_pair()[0])
    expired = pem(alipay.intermediate.issue(app_key.public_key(), "Test app", expires_in=timedelta(days=-1)))
    assert "LEDGER_ALIPAY_APP_CERT of app 2021000000000001: the app's certificate expired on" in problems_of(
        cert_env(alipay, APP_CERT=expired))


def test_the_app_certificate_needs_the_root_certificate_too(alipay: CertifiedAlipay, app_certificate: str) -> None:
    env = {**cert_env(alipay, APP_CERT=app_certificate)}
    del env["LEDGER_ALIPAY_ROOT_CERT"]
    assert ("LEDGER_ALIPAY_APP_CERT needs LEDGER_ALIPAY_ROOT_CERT: in certificate mode a request carries both "
            "app_cert_sn and alipay_root_cert_sn" in problems_of(env))


def test_an_app_certificate_for_another_key_than_the_apps_private_key_stops_start_up(
        alipay: CertifiedAlipay, app_certificate: str) -> None:
    env = cert_env(alipay, APP_CERT=app_certificate, APP_PRIVATE_KEY=generate_key_pair()[0].decode())
    assert (f"LEDGER_ALIPAY_APP_CERT of app {APP_ID}: its key is not the app private key's: give the certificate "
            "issued for that key" in problems_of(env))


def test_the_apps_certificate_also_given_as_alipays_is_found_when_both_are_set(
        alipay: CertifiedAlipay, app_certificate: str) -> None:
    env = cert_env(alipay, APP_CERT=app_certificate, PUBLIC_KEY=alipay.public_cert_file() + app_certificate)
    assert (f"LEDGER_ALIPAY_PUBLIC_KEY of app {APP_ID} holds the app's own certificate (LEDGER_ALIPAY_APP_CERT): "
            "configure Alipay's alipayCertPublicKey_RSA2.crt there" in problems_of(env))


def test_a_root_file_with_no_certificate_in_the_ring_stops_start_up(alipay: CertifiedAlipay) -> None:
    key = alipay.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert (f"LEDGER_ALIPAY_ROOT_CERT is set but LEDGER_ALIPAY_PUBLIC_KEY of app {APP_ID} holds no certificate"
            in problems_of(cert_env(alipay, PUBLIC_KEY=key)))


def test_a_root_file_that_is_not_certificates_stops_start_up(alipay: CertifiedAlipay) -> None:
    assert (f"LEDGER_ALIPAY_ROOT_CERT of app {APP_ID}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
            in problems_of(cert_env(alipay, ROOT_CERT="not a certificate")))


def test_a_key_change_from_a_public_key_to_a_certificate_holds_both(alipay: CertifiedAlipay) -> None:
    old_key = generate_key_pair()[1]
    app = Settings.from_env(cert_env(alipay, PUBLIC_KEY=old_key + "\n" + alipay.public_cert_file())).apps[APP_ID]
    assert [bool(key.cert_sn) for key in app.keys.keys] == [False, True]
    assert app.keys.keys[1].fingerprint == fingerprint(alipay.private_key.public_key())
