"""An app's Alipay key ring: several keys or certificates, the one that verified named by its fingerprint, the
certificate named by `alipay_cert_sn` tried first, and Alipay's serial number of a certificate."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ledger.alipay.keyring import AlipayKey, KeyRing, cert_sn, fingerprint, load_key_ring
from ledger.alipay.sandbox import generate_key_pair, load_private_key, sign_params, trade_notification
from ledger.alipay.signature import verify
from ledger.domain.errors import SignatureInvalid
from tests.support.certs import SM2_CERTIFICATE, Authority, CertifiedAlipay, pem

APP_ID = "2021000000000001"


@pytest.fixture(scope="module")
def pairs() -> list[tuple[rsa.RSAPrivateKey, str]]:
    """Two Alipay key pairs: the old one and the new one of a key change (private key, console form)."""
    made = [generate_key_pair() for _ in range(2)]
    return [(load_private_key(private_pem), console) for private_pem, console in made]


@pytest.fixture(scope="module")
def root() -> Authority:
    return Authority.root()


@pytest.fixture(scope="module")
def certified(root: Authority) -> list[CertifiedAlipay]:
    """Two Alipay certificates under one root, as during a certificate change."""
    return [CertifiedAlipay.new(root=root, common_name=f"Test Alipay Public Key RSA2 {n}") for n in (1, 2)]


def spki_pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def signed_by(private_key: rsa.RSAPrivateKey, **fields: str) -> dict[str, str]:
    return sign_params(trade_notification(APP_ID, "ORDER-1", **fields), private_key)


def test_the_fingerprint_is_the_sha256_of_the_keys_subject_public_key_info(
        pairs: list[tuple[rsa.RSAPrivateKey, str]]) -> None:
    public_key = pairs[0][0].public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert fingerprint(public_key) == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("separator", ["", "\n", "\n\n  "])
def test_several_pem_blocks_make_a_ring_of_each_key_in_order(
        separator: str, pairs: list[tuple[rsa.RSAPrivateKey, str]]) -> None:
    ring = load_key_ring(separator.join(spki_pem(key) for key, _ in pairs))
    assert ring.fingerprints == tuple(fingerprint(key.public_key()) for key, _ in pairs)


def test_one_line_keys_separated_by_commas_make_a_ring_and_a_key_given_twice_counts_once(
        pairs: list[tuple[rsa.RSAPrivateKey, str]]) -> None:
    (old, old_line), (new, new_line) = pairs
    ring = load_key_ring(f" {old_line} ,{new_line},{old_line}, ")
    assert ring.fingerprints == (fingerprint(old.public_key()), fingerprint(new.public_key()))


def test_one_line_keys_beside_pem_blocks_are_read_too_in_their_place(
        pairs: list[tuple[rsa.RSAPrivateKey, str]]) -> None:
    (old, old_line), (new, _) = pairs
    ring = load_key_ring(f"{old_line}\n{spki_pem(new)}")
    assert ring.fingerprints == (fingerprint(old.public_key()), fingerprint(new.public_key()))
    with pytest.raises(ValueError, match="key 2 of 2: the key is not valid base64"):
        load_key_ring(f"{spki_pem(new)}subject=CN=Alipay (text outside the block)\n")


def test_a_key_of_the_ring_that_is_not_alipays_is_named_by_its_place(
        pairs: list[tuple[rsa.RSAPrivateKey, str]]) -> None:
    with pytest.raises(ValueError) as caught:
        load_key_ring(spki_pem(pairs[0][0]) + SM2_CERTIFICATE)
    assert str(caught.value).startswith("key 2 of 2: this is an SM2 (EC) certificate")


def test_a_notification_signed_by_any_key_of_the_ring_verifies_and_names_that_key(
        pairs: list[tuple[rsa.RSAPrivateKey, str]]) -> None:
    ring = load_key_ring(",".join(line for _, line in pairs))
    for private_key, _ in pairs:
        assert verify(signed_by(private_key), ring).fingerprint == fingerprint(private_key.public_key())
    with pytest.raises(SignatureInvalid):
        verify(signed_by(load_private_key(generate_key_pair()[0])), ring)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)], ids=["leaf first", "intermediate first"])
def test_alipays_certificate_file_gives_one_key_and_keeps_its_intermediate_as_its_chain(
        order: tuple[int, int], certified: list[CertifiedAlipay]) -> None:
    alipay = certified[0]
    chain = [alipay.certificate, alipay.intermediate.certificate]
    ring = load_key_ring(pem(*(chain[i] for i in order)))
    [key] = ring.keys
    assert (key.cert_sn, key.subject) == (cert_sn(alipay.certificate), alipay.certificate.subject.rfc4514_string())
    assert key.not_after == alipay.certificate.not_valid_after_utc
    assert ring.chain == (alipay.intermediate.certificate,)


def test_two_certificate_files_one_after_the_other_give_both_certificates(certified: list[CertifiedAlipay]) -> None:
    ring = load_key_ring(certified[0].public_cert_file() + certified[1].public_cert_file())
    assert [key.cert_sn for key in ring.keys] == [cert_sn(alipay.certificate) for alipay in certified]


def test_a_ca_certificate_that_issued_no_certificate_given_is_refused(certified: list[CertifiedAlipay]) -> None:
    unrelated = certified[1].intermediate.certificate
    with pytest.raises(ValueError) as caught:
        load_key_ring(pem(certified[0].certificate, unrelated))
    assert str(caught.value) == ("key 2 of 2: this is a root/CA certificate (alipayRootCert.crt); configure "
                                 "Alipay's public-key certificate")


def test_the_certificate_named_by_alipay_cert_sn_is_tried_first(
        certified: list[CertifiedAlipay], monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = certified
    ring = load_key_ring(old.public_cert_file() + new.public_cert_file())
    tried: list[str] = []
    verifies = AlipayKey.verifies

    def spy(key: AlipayKey, data: bytes, signature: bytes, algorithm: hashes.HashAlgorithm) -> bool:
        tried.append(key.cert_sn)
        return verifies(key, data, signature, algorithm)

    monkeypatch.setattr(AlipayKey, "verifies", spy)
    new_sn = cert_sn(new.certificate)
    assert verify(signed_by(new.private_key, alipay_cert_sn=new_sn), ring).cert_sn == new_sn
    assert tried == [new_sn]  # the new certificate first, and only it
    tried.clear()
    assert verify(signed_by(new.private_key), ring).cert_sn == new_sn  # none named: in the ring's order
    assert tried == [cert_sn(old.certificate), new_sn]


def test_an_alipay_cert_sn_naming_no_certificate_of_the_ring_tries_them_all(certified: list[CertifiedAlipay]) -> None:
    old, new = certified
    ring = load_key_ring(old.public_cert_file() + new.public_cert_file())
    assert list(ring.candidates("0" * 32)) == list(ring.keys)
    assert list(ring.candidates(cert_sn(new.certificate))) == [ring.keys[1], ring.keys[0]]
    assert verify(signed_by(old.private_key, alipay_cert_sn="0" * 32), ring).cert_sn == cert_sn(old.certificate)


def test_cert_sn_is_alipays_md5_of_the_issuer_name_and_decimal_serial() -> None:
    """The vector of alipay-sdk-java-all's AntCertificationUtil.getCertSN (python-alipay-sdk agrees)."""
    issuer = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ant Financial"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Certification Authority"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Ant Financial Certification Authority Class 1 R1")])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(issuer).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(4069713097089082931).not_valid_before(now).not_valid_after(now + timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    assert certificate.issuer.rfc4514_string() == ("CN=Ant Financial Certification Authority Class 1 R1,"
                                                   "OU=Certification Authority,O=Ant Financial,C=CN")
    assert cert_sn(certificate) == "a53c6a9683b032b1698e65a67ecd2d01"


def test_a_ring_holds_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        KeyRing(())
