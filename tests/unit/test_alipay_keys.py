"""Loading Alipay's public key from every form merchants paste, and refusing everything else."""

import base64
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ledger.alipay.keys import load_public_key
from ledger.alipay.sandbox import generate_key_pair, load_private_key, sign_params, trade_notification
from ledger.alipay.signature import verify
from tests.support.certs import SM2_CERTIFICATE, SM2_PUBLIC_KEY, SM2_ROOT, Authority, name, pem

Enc, Pub, Priv = serialization.Encoding, serialization.PublicFormat, serialization.PrivateFormat


@pytest.fixture(scope="module")
def key_pair() -> tuple[rsa.RSAPrivateKey, str]:
    private_pem, console_form = generate_key_pair()
    return load_private_key(private_pem), console_form


@pytest.fixture(scope="module")
def private_key(key_pair: tuple[rsa.RSAPrivateKey, str]) -> rsa.RSAPrivateKey:
    return key_pair[0]


def pem_body(pem: bytes) -> str:
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


def certificate_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    """Alipay's public-key certificate for the key, issued by a CA (a certificate that issued itself is a root)."""
    return pem(Authority.root().issue(private_key.public_key())).encode()


@pytest.fixture(scope="module")
def pasted(key_pair: tuple[rsa.RSAPrivateKey, str]) -> dict[str, str]:
    private_key, console_form = key_pair
    public_key = private_key.public_key()
    spki_pem = public_key.public_bytes(Enc.PEM, Pub.SubjectPublicKeyInfo)
    pkcs1_pem = public_key.public_bytes(Enc.PEM, Pub.PKCS1)
    pkcs1_der = public_key.public_bytes(Enc.DER, Pub.PKCS1)
    cert_pem = certificate_pem(private_key)
    return {
        "console one-line DER": console_form,
        "PEM": spki_pem.decode(),
        "PEM with CRLF and indentation": textwrap.indent(spki_pem.decode(), "    ").replace("\n", "\r\n"),
        "PEM on one line": spki_pem.decode().replace("\n", ""),
        "PEM with literal \\n escapes": spki_pem.decode().replace("\n", "\\n"),
        "PEM body without armour": pem_body(spki_pem),
        "console form broken by spaces": " ".join(textwrap.wrap(console_form, 50)),
        "PKCS#1 PEM": pkcs1_pem.decode(),
        "PKCS#1 PEM on one line": pkcs1_pem.decode().replace("\n", ""),
        "PKCS#1 bare DER base64": base64.b64encode(pkcs1_der).decode(),
        "certificate PEM": cert_pem.decode(),
        "certificate DER base64 without armour": pem_body(cert_pem),
    }


FORMS = [
    "console one-line DER",
    "PEM",
    "PEM with CRLF and indentation",
    "PEM on one line",
    "PEM with literal \\n escapes",
    "PEM body without armour",
    "console form broken by spaces",
    "PKCS#1 PEM",
    "PKCS#1 PEM on one line",
    "PKCS#1 bare DER base64",
    "certificate PEM",
    "certificate DER base64 without armour",
]


def test_every_form_built_is_tested(pasted: dict[str, str]) -> None:
    assert sorted(pasted) == sorted(FORMS)


@pytest.mark.parametrize("form", FORMS)
def test_every_pasted_form_loads_alipays_public_key(
    form: str, pasted: dict[str, str], key_pair: tuple[rsa.RSAPrivateKey, str]
) -> None:
    loaded = load_public_key(pasted[form])
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.public_numbers() == key_pair[0].public_key().public_numbers()


@pytest.mark.parametrize("form", ["console one-line DER", "PKCS#1 PEM", "certificate PEM"])
def test_a_key_loaded_from_any_form_verifies_alipays_signature(
    form: str, pasted: dict[str, str], private_key: rsa.RSAPrivateKey
) -> None:
    params = sign_params(trade_notification("2021000000000001", "ORDER-1"), private_key)
    verify(params, load_public_key(pasted[form]))


@pytest.mark.parametrize(
    "private_form",
    [
        (Enc.PEM, Priv.PKCS8),
        (Enc.PEM, Priv.TraditionalOpenSSL),
        (Enc.DER, Priv.PKCS8),
        (Enc.DER, Priv.TraditionalOpenSSL),
    ],
)
def test_a_private_key_pasted_by_mistake_is_refused_with_a_clear_message(
    private_form: tuple[serialization.Encoding, serialization.PrivateFormat], private_key: rsa.RSAPrivateKey
) -> None:
    encoded = private_key.private_bytes(*private_form, serialization.NoEncryption())
    text = encoded.decode() if private_form[0] is Enc.PEM else base64.b64encode(encoded).decode()
    with pytest.raises(ValueError, match="this is a private key; configure Alipay's public key"):
        load_public_key(text)


@pytest.mark.parametrize("encoding", [Enc.PEM, Enc.DER])
def test_an_encrypted_private_key_is_refused_as_a_private_key(
    encoding: serialization.Encoding, private_key: rsa.RSAPrivateKey
) -> None:
    encrypted = private_key.private_bytes(encoding, Priv.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    text = encrypted.decode() if encoding is Enc.PEM else base64.b64encode(encrypted).decode()
    with pytest.raises(ValueError, match="private key"):
        load_public_key(text)


@pytest.mark.parametrize(
    ("generate", "reason"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()),
         "this is an EC key; the ledger verifies RSA2: configure Alipay's RSA2 public key"),
        (ed25519.Ed25519PrivateKey.generate, "this is not an RSA key; Alipay signs with RSA"),
    ],
)
def test_a_non_rsa_public_key_is_refused(generate: Callable[[], PrivateKeyTypes], reason: str) -> None:
    text = generate().public_key().public_bytes(Enc.PEM, Pub.SubjectPublicKeyInfo).decode()
    for form in (text, pem_body(text.encode())):
        with pytest.raises(ValueError) as caught:
            load_public_key(form)
        assert str(caught.value) == reason


SM2_CERTIFICATE_REFUSED = ("this is an SM2 (EC) certificate; the ledger verifies RSA2: use the RSA2 certificate "
                           "alipayCertPublicKey_RSA2.crt")
AUTHORITY_REFUSED = "this is a root/CA certificate (alipayRootCert.crt); configure Alipay's public-key certificate"


@pytest.mark.parametrize("form", [SM2_CERTIFICATE, pem_body(SM2_CERTIFICATE.encode())], ids=["PEM", "bare DER"])
def test_an_sm2_certificate_given_as_alipays_key_is_refused_as_one(form: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_public_key(form)
    assert str(caught.value) == SM2_CERTIFICATE_REFUSED


def test_an_sm2_public_key_is_refused_as_one() -> None:
    for form in (SM2_PUBLIC_KEY, pem_body(SM2_PUBLIC_KEY.encode())):
        with pytest.raises(ValueError) as caught:
            load_public_key(form)
        assert str(caught.value) == ("this is an SM2 (EC) key; the ledger verifies RSA2: configure Alipay's RSA2 "
                                     "public key")


def test_an_ec_certificate_of_another_curve_is_refused_as_an_ec_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name("EC leaf")).issuer_name(name("EC CA"))
                   .public_key(key.public_key()).serial_number(7).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    with pytest.raises(ValueError) as caught:
        load_public_key(pem(certificate))
    assert str(caught.value) == SM2_CERTIFICATE_REFUSED.replace("SM2 (EC)", "EC")


def test_a_root_a_ca_or_a_self_issued_certificate_given_as_alipays_key_is_refused_as_one(
    private_key: rsa.RSAPrivateKey,
) -> None:
    root = Authority.root(key=private_key)
    intermediate = root.intermediate()
    self_issued = intermediate.issue(private_key.public_key(), issuer=name("Test Alipay Public Key RSA2",
                                                                            organisation="Test Alipay", unit="Alipay"))
    for certificate in (root.certificate, intermediate.certificate, self_issued):
        with pytest.raises(ValueError) as caught:
            load_public_key(pem(certificate))
        assert str(caught.value) == AUTHORITY_REFUSED
    with pytest.raises(ValueError) as caught:
        load_public_key(SM2_ROOT)
    assert str(caught.value) == SM2_CERTIFICATE_REFUSED  # an SM2 root is refused for its SM2 first


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" \n\t", "empty"),
        ("not a key at all!", "not valid base64"),
        ("TUlJQklqQU5CZ2txaGtpRzl3MEJBUUVGQUFPQ0FROEFNSUlCQ2dLQ0FRRUE=", "not a public key"),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n", "armour"),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END CERTIFICATE-----", "armour"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        load_public_key(text)


def test_a_truncated_key_is_refused(key_pair: tuple[rsa.RSAPrivateKey, str]) -> None:
    with pytest.raises(ValueError, match="not a public key"):
        load_public_key(key_pair[1][:200])


def test_bytes_instead_of_text_are_refused(key_pair: tuple[rsa.RSAPrivateKey, str]) -> None:
    with pytest.raises(ValueError, match="text"):
        load_public_key(key_pair[1].encode())  # type: ignore[arg-type]
