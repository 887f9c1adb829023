"""Certificate mode's rules: the root file's serial numbers as Alipay's SDK joins them, the chain from Alipay's
certificate up to a root, and the app's own certificate."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from ledger.alipay.certs import chain_problem, load_app_certificate, load_certificates, root_cert_sn
from ledger.alipay.keyring import cert_sn, load_key_ring
from ledger.alipay.sandbox import generate_key_pair, load_private_key
from tests.support.certs import SM2_CERTIFICATE, SM2_ROOT, Authority, CertifiedAlipay, new_key, pem

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def alipay() -> CertifiedAlipay:
    return CertifiedAlipay.new()


def test_the_root_file_is_read_whole_and_anything_but_certificates_in_it_is_refused(alipay: CertifiedAlipay) -> None:
    assert load_certificates(alipay.root_cert_file())[0] == alipay.root.certificate
    assert len(load_certificates(alipay.root_cert_file().replace("\n", "\\n"))) == 2  # as kept in an env file
    for text, reason in [("", "no PEM certificate"), ("MIIB" * 20, "no PEM certificate"),
                         (SM2_ROOT + "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
                          "block 2 of 2 is not a certificate")]:
        with pytest.raises(ValueError, match=reason):
            load_certificates(text)


def test_alipay_root_cert_sn_joins_the_sns_of_the_roots_signed_with_rsa_in_file_order() -> None:
    first, second = Authority.root("Test Root A"), Authority.root("Test Root B")
    roots = load_certificates(pem(first.certificate) + SM2_ROOT + pem(second.certificate))
    assert root_cert_sn(roots) == f"{cert_sn(first.certificate)}_{cert_sn(second.certificate)}"  # SM2's left out
    assert root_cert_sn(load_certificates(SM2_ROOT)) == ""


def test_alipays_certificate_chains_through_its_intermediate_to_the_root(alipay: CertifiedAlipay) -> None:
    ring = load_key_ring(alipay.public_cert_file())
    roots = load_certificates(alipay.root_cert_file())
    assert chain_problem(alipay.certificate, roots, ring.chain, now=NOW) is None
    # The intermediate may come in the root file instead.
    roots_and_intermediate = (*roots, alipay.intermediate.certificate)
    assert chain_problem(alipay.certificate, roots_and_intermediate, now=NOW) is None


def test_a_certificate_under_another_root_or_without_its_intermediate_does_not_chain(alipay: CertifiedAlipay) -> None:
    other_root = load_certificates(CertifiedAlipay.new().root_cert_file())
    problem = chain_problem(alipay.certificate, other_root, (alipay.intermediate.certificate,), now=NOW)
    assert problem == (f"{alipay.intermediate.certificate.subject.rfc4514_string()} (SN "
                       f"{cert_sn(alipay.intermediate.certificate)}) is issued by "
                       f"{alipay.root.certificate.subject.rfc4514_string()}, and no certificate of the root file or "
                       "of the chain given with it issued it")
    problem = chain_problem(alipay.certificate, load_certificates(alipay.root_cert_file()), now=NOW)
    assert problem is not None and problem.startswith(alipay.certificate.subject.rfc4514_string())


def test_a_certificate_whose_issuer_name_matches_but_whose_signature_does_not_is_not_chained() -> None:
    root = Authority.root("Test Alipay Root R1")
    impostor = Authority.root("Test Alipay Root R1")  # the same name, another key
    certificate = impostor.issue(new_key().public_key())
    assert certificate.issuer == root.certificate.subject
    assert chain_problem(certificate, (root.certificate,), now=NOW) is not None


def test_an_expired_intermediate_breaks_the_chain() -> None:
    root = Authority.root()
    expired = root.intermediate(expires_in=timedelta(days=-1))
    certificate = expired.issue(new_key().public_key())
    problem = chain_problem(certificate, (root.certificate,), (expired.certificate,), now=NOW)
    expiry = expired.certificate.not_valid_after_utc
    assert problem is not None and problem.endswith(f"in its chain expired on {expiry:%Y-%m-%d}")


def test_the_apps_certificate_is_the_first_end_certificate_of_its_file_for_the_apps_private_key() -> None:
    private_pem, _ = generate_key_pair()
    app_key = load_private_key(private_pem)
    root = Authority.root()
    certificate = root.issue(app_key.public_key(), "Test app 2021000000000001")
    public_key, loaded = load_app_certificate(pem(root.certificate, certificate), app_key)
    assert loaded == certificate and public_key.public_numbers() == app_key.public_key().public_numbers()
    with pytest.raises(ValueError, match="its key is not the app private key's"):
        load_app_certificate(pem(certificate), load_private_key(generate_key_pair()[0]))


@pytest.mark.parametrize(("text", "reason"), [
    (SM2_CERTIFICATE, "this is an SM2 (EC) certificate; requests are signed RSA2: use the app's RSA2 certificate"),
    (SM2_ROOT, "this is a root/CA certificate; configure the app's own certificate"),
])
def test_an_sm2_or_ca_certificate_given_as_the_apps_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        load_app_certificate(text)


def test_an_rsa_root_given_as_the_apps_certificate_is_refused() -> None:
    root = Authority.root()
    with pytest.raises(ValueError, match="root/CA certificate"):
        load_app_certificate(pem(root.certificate))
