"""Certificate mode: Alipay's root certificates, the chain from each configured Alipay certificate up to one
of them, the serial numbers that requests carry (`app_cert_sn`, `alipay_root_cert_sn`) and the app's own
certificate, as alipay-sdk-java-all's AntCertificationUtil reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import PublicKeyAlgorithmOID

from ledger.alipay.keyring import cert_sn, fingerprint, pem_blocks
from ledger.alipay.keys import is_authority, issued_by, load_certificate

# Signature algorithms of PKCS#1 (sha256WithRSAEncryption is 1.2.840.113549.1.1.11): getRootCertSN keeps
# the roots signed so and leaves out the others of alipayRootCert.crt (ECC, SM2).
RSA_SIGNATURES = "1.2.840.113549.1.1."
MAX_CHAIN = 5


def load_certificates(text: str) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file such as alipayRootCert.crt (several, one after the other)."""
    if not isinstance(text, str):
        raise ValueError("the certificates must be given as text")
    blocks = pem_blocks(text)
    if not blocks:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    certificates = []
    for number, block in enumerate(blocks, start=1):
        certificate = load_certificate(block)
        if certificate is None:
            raise ValueError(f"block {number} of {len(blocks)} is not a certificate")
        certificates.append(certificate)
    return tuple(certificates)


def root_cert_sn(roots: Sequence[x509.Certificate]) -> str:
    """`alipay_root_cert_sn`: the SNs of the root file's certificates signed with RSA, joined by `_`."""
    return "_".join(cert_sn(root) for root in roots
                    if root.signature_algorithm_oid.dotted_string.startswith(RSA_SIGNATURES))


def describe(certificate: x509.Certificate) -> str:
    return f"{certificate.subject.rfc4514_string()} (SN {cert_sn(certificate)})"


def chain_problem(certificate: x509.Certificate, roots: Sequence[x509.Certificate],
                  intermediates: Sequence[x509.Certificate] = (), *, now: datetime) -> str | None:
    """Why `certificate` does not chain up to one of `roots`, through `intermediates` (each link's issuer name,
    signature and validity checked), or None when it does."""
    current, used = certificate, 0
    while used < MAX_CHAIN:
        issuer = next((root for root in roots if issued_by(current, root)), None)
        if issuer is None:
            issuer = next((ca for ca in intermediates if issued_by(current, ca)), None)
            if issuer is None:
                return (f"{describe(current)} is issued by {current.issuer.rfc4514_string()}, and no certificate "
                        "of the root file or of the chain given with it issued it")
        if issuer.not_valid_after_utc <= now:
            return f"{describe(issuer)} in its chain expired on {issuer.not_valid_after_utc:%Y-%m-%d}"
        if issuer in roots:
            return None
        current, used = issuer, used + 1
    return f"{describe(certificate)} has a chain longer than {MAX_CHAIN} certificates"


def load_app_certificate(text: str, private_key: RSAPrivateKey | None = None) -> tuple[RSAPublicKey, x509.Certificate]:
    """The app's own certificate (appCertPublicKey_<APPID>.crt) and its key: the first end certificate of
    `text`, RSA, for the app's private key if there is one; ValueError with the reason otherwise."""
    leaves = [certificate for certificate in load_certificates(text) if not is_authority(certificate)]
    if not leaves:
        raise ValueError("this is a root/CA certificate; configure the app's own certificate "
                         "appCertPublicKey_<APPID>.crt")
    certificate = leaves[0]
    if certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.EC_PUBLIC_KEY:  # before reading an SM2 key
        raise ValueError("this is an SM2 (EC) certificate; requests are signed RSA2: use the app's RSA2 "
                         "certificate appCertPublicKey_<APPID>.crt")
    public_key = certificate.public_key()
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError("this is not an RSA certificate; requests are signed RSA2")
    if private_key is not None and fingerprint(public_key) != fingerprint(private_key.public_key()):
        raise ValueError("its key is not the app private key's: give the certificate issued for that key")
    return public_key, certificate
