"""Certificates as Alipay issues them, for tests: a root, an intermediate under it, and public-key
certificates under that (alipayRootCert.crt holds the root, alipayCertPublicKey_RSA2.crt the public-key
certificate followed by its intermediate); and SM2 ones, which only OpenSSL makes (kept here as made)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ledger.alipay.sandbox import load_private_key


def name(common_name: str, *, organisation: str = "Test Ant Financial", unit: str = "Certification Authority"
         ) -> x509.Name:
    """A name as Alipay's read, country first: its RFC 4514 string starts with the CN."""
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class Authority:
    """A CA: its key and certificate; issues certificates under it."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def root(cls, common_name: str = "Test Alipay Root R1", *, key: rsa.RSAPrivateKey | None = None,
             expires_in: timedelta = timedelta(days=3650)) -> Authority:
        key = key or new_key()
        subject = name(common_name)
        return cls(key, _build(subject, subject, key.public_key(), key, ca=True, expires_in=expires_in))

    def intermediate(self, common_name: str = "Test Alipay Class 2 R1", *,
                     expires_in: timedelta = timedelta(days=1825)) -> Authority:
        key = new_key()
        return Authority(key, _build(name(common_name), self.certificate.subject, key.public_key(), self.key, ca=True,
                                     expires_in=expires_in))

    def issue(self, public_key: rsa.RSAPublicKey, common_name: str = "Test Alipay Public Key RSA2", *,
              expires_in: timedelta = timedelta(days=365), serial: int | None = None,
              issuer: x509.Name | None = None) -> x509.Certificate:
        """An end certificate for `public_key`; `issuer` names another issuer than this CA (which signs it still)."""
        return _build(name(common_name, organisation="Test Alipay", unit="Alipay"), issuer or self.certificate.subject,
                      public_key, self.key, ca=False, expires_in=expires_in, serial=serial)


def _build(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey, signer: rsa.RSAPrivateKey, *,
           ca: bool, expires_in: timedelta, serial: int | None = None) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(min(now - timedelta(days=1), now + expires_in - timedelta(days=1)))
            .not_valid_after(now + expires_in)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256()))


def pem(*certificates: x509.Certificate) -> str:
    """Certificates one after the other, as in Alipay's .crt files."""
    return "".join(certificate.public_bytes(serialization.Encoding.PEM).decode() for certificate in certificates)


@dataclass(frozen=True)
class CertifiedAlipay:
    """Alipay in certificate mode: a signing key and its public-key certificate, under an intermediate and a root."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    intermediate: Authority
    root: Authority

    @classmethod
    def new(cls, private_pem: bytes | None = None, *, root: Authority | None = None,
            expires_in: timedelta = timedelta(days=365), common_name: str = "Test Alipay Public Key RSA2"
            ) -> CertifiedAlipay:
        root = root or Authority.root()
        intermediate = root.intermediate()
        key = load_private_key(private_pem) if private_pem else new_key()
        return cls(key, intermediate.issue(key.public_key(), common_name, expires_in=expires_in), intermediate, root)

    def public_cert_file(self) -> str:
        """alipayCertPublicKey_RSA2.crt: the public-key certificate, then the intermediate that issued it."""
        return pem(self.certificate, self.intermediate.certificate)

    def root_cert_file(self) -> str:
        """alipayRootCert.crt: Alipay's roots, an SM2 one among them (left out of alipay_root_cert_sn)."""
        return pem(self.root.certificate) + SM2_ROOT


# Made with OpenSSL 3 (`openssl genpkey -algorithm SM2`; `openssl req -x509 -sm3`, then a leaf issued by it
# with basicConstraints CA:FALSE), valid until 2126. cryptography reads them but not their keys.
SM2_ROOT = """-----BEGIN CERTIFICATE-----
MIICCjCCAbGgAwIBAgIUMCYxFKxv8SuLZzvPJbyVjbef6lYwCgYIKoEcz1UBg3Uw
WjELMAkGA1UEBhMCQ04xFjAUBgNVBAoMDUFudCBGaW5hbmNpYWwxIDAeBgNVBAsM
F0NlcnRpZmljYXRpb24gQXV0aG9yaXR5MREwDwYDVQQDDAhTTTIgdGVzdDAgFw0y
NjEyMDExMjUzNTBaGA8yMTI2MTEwNzEyNTM1MFowWjELMAkGA1UEBhMCQ04xFjAU
BgNVBAoMDUFudCBGaW5hbmNpYWwxIDAeBgNVBAsMF0NlcnRpZmljYXRpb24gQXV0
aG9yaXR5MREwDwYDVQQDDAhTTTIgdGVzdDBZMBMGByqGSM49AgEGCCqBHM9VAYIt
A0IABF7i/cLmar5i/DvIYuiRoFRmFvwigZ9Un0wgqM0gRyQOsM4bBPZPTbgfTsOj
WHIsfH2b4OrJIb32tqSV/ftlKFejUzBRMB0GA1UdDgQWBBRm01gcBX6MeTnTbWwK
GtKk6mnFwzAfBgNVHSMEGDAWgBRm01gcBX6MeTnTbWwKGtKk6mnFwzAPBgNVHRMB
Af8EBTADAQH/MAoGCCqBHM9VAYN1A0cAMEQCICme/RGvWz38keWVrs9v0VVoSeNc
mHgLFaT1yHjuTHsXAiBedL5OBqr19M4i0Z+lmdb/Q5DWK/ILX/lfxfYh9FyCNA==
-----END CERTIFICATE-----
"""
SM2_CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIICCDCCAa+gAwIBAgICEJIwCgYIKoEcz1UBg3UwWjELMAkGA1UEBhMCQ04xFjAU
BgNVBAoMDUFudCBGaW5hbmNpYWwxIDAeBgNVBAsMF0NlcnRpZmljYXRpb24gQXV0
aG9yaXR5MREwDwYDVQQDDAhTTTIgdGVzdDAgFw0yNjEyMDExMjU0MjNaGA8yMTI2
MTEwNzEyNTQyM1owXTELMAkGA1UEBhMCQ04xGDAWBgNVBAoMD1Rlc3QgU00yIEFs
aXBheTEPMA0GA1UECwwGQWxpcGF5MSMwIQYDVQQDDBpTTTIgcHVibGljLWtleSBj
ZXJ0aWZpY2F0ZTBZMBMGByqGSM49AgEGCCqBHM9VAYItA0IABDrZ8kNsyp3AWHId
DKnnQX/WZ1bUeFlrVpp2ycrvbg/x5GqdFrfmHdousdzqP2UIVLw9en4aTXWGjDXl
YIzk2T2jYDBeMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMB0GA1UdDgQW
BBQpp2kgc4QJit/QeyKH4iQlSr9dJzAfBgNVHSMEGDAWgBRm01gcBX6MeTnTbWwK
GtKk6mnFwzAKBggqgRzPVQGDdQNHADBEAiAaxgHvDhYzSSYe0u/zSDSHwZAJJ21C
nsX9H3G620k1uAIgXmamlAy8EuCznBsE5EcDSeWYn5uxrD2IL5X+6x5GleA=
-----END CERTIFICATE-----
"""
SM2_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAEXuL9wuZqvmL8O8hi6JGgVGYW/CKB
n1SfTCCozSBHJA6wzhsE9k9NuB9Ow6NYcix8fZvg6skhvfa2pJX9+2UoVw==
-----END PUBLIC KEY-----
"""
