"""Load Alipay's RSA public key from whichever form a merchant pasted: console base64 DER, PEM, PKCS#1
or an X.509 certificate (certificate mode), refusing with the reason what is not one (a private key, an SM2
key or certificate, a root or CA certificate)."""

import base64
import re
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import PublicKeyAlgorithmOID

_PRIVATE = "this is a private key; configure Alipay's public key"
_AUTHORITY = "this is a root/CA certificate (alipayRootCert.crt); configure Alipay's public-key certificate"
_RSA2 = "the ledger verifies RSA2"


class Refused(ValueError):
    """What was given is a key or certificate, but of a kind Alipay's key must not be; the message says which."""


# The SM2 curve's OID (1.2.156.10197.1.301) as DER: cryptography cannot load such a key, so it is found here.
_SM2_CURVE = bytes.fromhex("06082a811ccf5501822d")
# Matched after all whitespace is gone, so "BEGIN RSA PUBLIC KEY" reads "BEGINRSAPUBLICKEY".
_PEM = re.compile(r"-----BEGIN([A-Z0-9]+)-----(.*?)-----END\1-----")


def load_public_key(text: str) -> RSAPublicKey:
    """Alipay's public key from `text`; ValueError with the reason when it is not an RSA public key."""
    return load_key(text)[0]


def load_key(text: str) -> tuple[RSAPublicKey, x509.Certificate | None]:
    """Alipay's public key from one key or certificate in `text`, and the certificate if it was one."""
    label, body = _armoured(text)
    if "PRIVATE" in label:
        raise ValueError(_PRIVATE)
    key, certificate = _load_der(_b64decode(body))
    if certificate is not None and is_authority(certificate):
        raise Refused(_AUTHORITY)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("this is not an RSA key; Alipay signs with RSA")
    return key, certificate


def load_certificate(text: str) -> x509.Certificate | None:
    """The certificate in `text` (one PEM block or base64 DER), or None when it holds something else."""
    compact = "".join(text.replace("\\n", "\n").replace("\\r", "\r").split())
    match = _PEM.search(compact)
    label, body = match.groups() if match else ("", compact)
    if label not in ("", "CERTIFICATE"):
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode(body, validate=True))
    except ValueError:
        return None


def is_authority(certificate: x509.Certificate) -> bool:
    """A root or CA certificate: it may issue certificates (basic constraints CA), or it issued itself."""
    try:
        if certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return True
    except x509.ExtensionNotFound:
        pass
    return certificate.issuer == certificate.subject


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `certificate` (names and signature; an issuer's key cryptography cannot read,
    an SM2 root's, signed nothing the ledger can use)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _armoured(text: str) -> tuple[str, str]:
    """(the PEM label, squeezed: "RSAPUBLICKEY", or "" for no armour; the base64 body) of one key in `text`."""
    if not isinstance(text, str):
        raise ValueError("the key must be given as text")
    # Keys kept in env files or JSON often carry literal "\n" escapes; a backslash is never part of a key.
    compact = "".join(text.replace("\\n", "\n").replace("\\r", "\r").split())
    if not compact:
        raise ValueError("the key is empty")
    match = _PEM.search(compact)
    if match:
        return match.group(1), match.group(2)
    if "-----" in compact:
        raise ValueError("the key's PEM armour is incomplete or its BEGIN and END lines differ")
    return "", compact


def _b64decode(body: str) -> bytes:
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise ValueError("the key is not valid base64") from None


def _certificate_key(der: bytes) -> tuple[Any, x509.Certificate | None]:
    certificate = x509.load_der_x509_certificate(der)
    if certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.EC_PUBLIC_KEY:
        # Before reading the key, which cryptography cannot do for SM2's curve.
        raise Refused(f"this is an {_ec_kind(certificate.tbs_certificate_bytes)} certificate; {_RSA2}: "
                      "use the RSA2 certificate alipayCertPublicKey_RSA2.crt")
    return certificate.public_key(), certificate


def _bare_key(der: bytes) -> tuple[Any, x509.Certificate | None]:
    try:
        key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm:
        if _SM2_CURVE not in der[:32]:  # the algorithm identifier comes first
            raise
        key = None
    if key is None or isinstance(key, EllipticCurvePublicKey):
        raise Refused(f"this is an {_ec_kind(der)} key; {_RSA2}: configure Alipay's RSA2 public key")
    return key, None


def _ec_kind(der: bytes) -> str:
    return "SM2 (EC)" if _SM2_CURVE in der else "EC"


# SubjectPublicKeyInfo first (the console's form); cryptography falls back to bare PKCS#1 by itself.
_LOADERS: tuple[Callable[[bytes], tuple[Any, x509.Certificate | None]], ...] = (_bare_key, _certificate_key)


def _load_der(der: bytes) -> tuple[Any, x509.Certificate | None]:
    for loader in _LOADERS:
        try:
            return loader(der)
        except Refused:
            raise
        except (ValueError, UnsupportedAlgorithm):
            continue
    if _is_private_key(der):
        raise ValueError(_PRIVATE)
    raise ValueError("not a public key in base64 DER, PEM, PKCS#1 or X.509 certificate form")


def _is_private_key(der: bytes) -> bool:
    # Alipay's key tool shows the app's private key as one base64 line too, easily pasted by mistake.
    try:
        serialization.load_der_private_key(der, password=None)
    except TypeError:  # encrypted: it wants a password, so it is a private key all the same
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def load_app_private_key(text: str) -> RSAPrivateKey:
    """The app's own private key (it signs requests to the gateway): PKCS#1 or PKCS#8, PEM or the key tool's
    one-line base64; ValueError with the reason otherwise."""
    label, body = _armoured(text)
    if "PUBLIC" in label or "CERTIFICATE" in label:
        raise ValueError("this is a public key or certificate; configure the app's private key")
    der = _b64decode(body)
    try:
        key = serialization.load_der_private_key(der, password=None)
    except TypeError:
        raise ValueError("the private key is encrypted; give it without a password") from None
    except (ValueError, UnsupportedAlgorithm):
        try:
            _load_der(der)
        except ValueError:
            raise ValueError("not a private key in PKCS#1 or PKCS#8, PEM or base64 DER form") from None
        raise ValueError("this is a public key; configure the app's private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("this is not an RSA key; requests are signed RSA2")
    return key
