"""An app's Alipay key ring: every Alipay public key (or certificate) a signature may verify with.

Several keys are configured during a key or signing-method change (Alipay keeps the old one valid for 7
days). A signature verifies against any key of the ring; what verified it is named by its fingerprint,
recorded with the callback, so an auditor can re-verify once the key is retired from the ring. In
certificate mode the certificate whose serial number matches the sender's `alipay_cert_sn` is tried first;
a CA certificate given with the certificates it issued (Alipay's file holds its intermediate) is kept as
their chain, not as a key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ledger.alipay.keys import is_authority, issued_by, load_certificate, load_key

# Matched after all whitespace is gone, as in ledger.alipay.keys.
_PEM_BLOCK = re.compile(r"-----BEGIN([A-Z0-9 ]+)-----.*?-----END\1-----", re.S)


def fingerprint(public_key: RSAPublicKey) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo DER, in hex: what
    `openssl pkey -pubin -outform DER | sha256sum` prints for the same key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def cert_sn(certificate: x509.Certificate) -> str:
    """The serial number Alipay gives a certificate (`alipay_cert_sn`, `app_cert_sn`): md5 of the issuer's
    name as Java's X500Principal.getName() writes it (RFC 2253) followed by the decimal serial number
    (alipay-sdk-java-all AntCertificationUtil.getCertSN)."""
    text = certificate.issuer.rfc4514_string() + str(certificate.serial_number)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class AlipayKey:
    """One key of the ring: the RSA key, its fingerprint and, from a certificate, its serial and validity."""

    public_key: RSAPublicKey = field(repr=False)
    fingerprint: str
    cert_sn: str = ""
    not_after: datetime | None = None
    subject: str = ""
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, public_key: RSAPublicKey, certificate: x509.Certificate | None = None) -> AlipayKey:
        if certificate is None:
            return cls(public_key, fingerprint(public_key))
        return cls(public_key, fingerprint(public_key), cert_sn(certificate), certificate.not_valid_after_utc,
                   certificate.subject.rfc4514_string(), certificate)

    def verifies(self, data: bytes, signature: bytes, algorithm: hashes.HashAlgorithm) -> bool:
        try:
            self.public_key.verify(signature, data, PKCS1v15(), algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[AlipayKey, ...]
    # The CA certificates given with the keys' certificates: their chain up to Alipay's root.
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring holds at least one key")

    @classmethod
    def of(cls, *public_keys: RSAPublicKey) -> KeyRing:
        return cls(tuple(AlipayKey.of(key) for key in public_keys))

    def candidates(self, cert_sn: str | None = None) -> Iterator[AlipayKey]:
        """Every key, the certificate named by `cert_sn` (if any) first."""
        named = [key for key in self.keys if cert_sn and key.cert_sn == cert_sn]
        yield from named
        yield from (key for key in self.keys if key not in named)

    def verifying(self, data: bytes, signature: bytes, algorithm: hashes.HashAlgorithm, *,
                  cert_sn: str | None = None) -> AlipayKey | None:
        """The key that signed `data`, or None."""
        for key in self.candidates(cert_sn):
            if key.verifies(data, signature, algorithm):
                return key
        return None

    def find(self, fingerprint: str) -> AlipayKey | None:
        return next((key for key in self.keys if key.fingerprint == fingerprint), None)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(key.fingerprint for key in self.keys)


def pem_blocks(text: str) -> list[str]:
    """Each PEM block of `text`, BEGIN to END (literal "\\n" escapes read as line breaks)."""
    text = text.replace("\\n", "\n").replace("\\r", "\r")
    return [match.group(0) for match in _PEM_BLOCK.finditer(text)]


def load_key_ring(text: str) -> KeyRing:
    """Every key in `text`: PEM blocks one after the other (keys or certificates), and one-line base64 keys
    separated by commas; ValueError naming which one is not an Alipay public key."""
    if not isinstance(text, str):
        raise ValueError("the key must be given as text")
    blocks = _items(text.replace("\\n", "\n").replace("\\r", "\r")) or [text]
    chain = _chain([load_certificate(block) for block in blocks])
    keys: list[AlipayKey] = []
    for index, block in enumerate(blocks):
        if index in chain:
            continue
        try:
            public_key, certificate = load_key(block)
        except ValueError as exc:
            raise ValueError(f"key {index + 1} of {len(blocks)}: {exc}" if len(blocks) > 1 else str(exc)) from None
        key = AlipayKey.of(public_key, certificate)
        if key.fingerprint not in {known.fingerprint for known in keys}:
            keys.append(key)
    return KeyRing(tuple(keys), tuple(chain.values()))


def _items(text: str) -> list[str]:
    """Each key of `text`, in order: PEM blocks, and between them one-line keys separated by commas (nothing
    outside a block is left out unread)."""
    items: list[str] = []
    at = 0
    for match in _PEM_BLOCK.finditer(text):
        items += [part.strip() for part in text[at:match.start()].split(",") if part.strip()]
        items.append(match.group(0))
        at = match.end()
    return items + [part.strip() for part in text[at:].split(",") if part.strip()]


def _chain(certificates: list[x509.Certificate | None]) -> dict[int, x509.Certificate]:
    """By position, the CA certificates that issued one of the end certificates among them, directly or up."""
    authorities = {index: c for index, c in enumerate(certificates) if c is not None and is_authority(c)}
    found: dict[int, x509.Certificate] = {}
    below = [c for c in certificates if c is not None and not is_authority(c)]
    while below:
        current = below.pop()
        for index, authority in authorities.items():
            if index not in found and issued_by(current, authority):
                found[index] = authority
                below.append(authority)
    return found
