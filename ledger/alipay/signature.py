"""Verify an Alipay notification's signature as the official SDKs do: the V1 signed string, then V2."""

import base64
import contextlib
import itertools
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ledger.alipay.form import codec_for
from ledger.alipay.keyring import AlipayKey, KeyRing
from ledger.domain.errors import SignatureInvalid

DEFAULT_SIGN_TYPE = "RSA2"
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"RSA2": hashes.SHA256, "RSA": hashes.SHA1}
_WRAPPING = str.maketrans("", "", "\r\n\t\f\v")  # whitespace a sign may arrive wrapped with, spaces aside


def signed_string(params: dict[str, str], *, keep_sign_type: bool = False) -> str:
    """What Alipay signs: every parameter but `sign` (and `sign_type` for V1), non-empty, sorted by key."""
    if not isinstance(params, Mapping):
        raise SignatureInvalid("parameters must be a mapping of names to strings")
    for key, value in params.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            # Typically a framework's multi-dict giving lists: verify the parsed notification instead.
            raise SignatureInvalid(f"parameter {key!r} is not a single string")
    excluded = {"sign"} if keep_sign_type else {"sign", "sign_type"}
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key not in excluded and params[key])


def verify(params: dict[str, str], keys: KeyRing | RSAPublicKey) -> AlipayKey:
    """The key of the app's Alipay key ring that signed `params`; raise SignatureInvalid if none did.

    In certificate mode a notification's `alipay_cert_sn` names the certificate to try first."""
    ring = _ring(keys)
    v1 = signed_string(params)  # first: it also checks that params is a mapping of single strings
    sign_type = params.get("sign_type") or DEFAULT_SIGN_TYPE
    _supported(sign_type)
    signature = decode_sign(params.get("sign"))
    codec = codec_for(params.get("charset"))
    if codec is None:
        raise SignatureInvalid(f"unsupported charset {params.get('charset')!r}")
    v2 = (signed_string(params, keep_sign_type=True) for _ in range(1) if "sign_type" in params)
    for text in itertools.chain([v1], v2):  # V2 is built only if V1 fails
        try:
            data = text.encode(codec)
        except UnicodeEncodeError:
            raise SignatureInvalid(f"parameters cannot be encoded in {params.get('charset')}") from None
        key = ring.verifying(data, signature, HASHES[sign_type](), cert_sn=params.get("alipay_cert_sn"))
        if key is not None:
            return key
    raise SignatureInvalid("signature does not verify with the app's Alipay public key")


def verify_text(data: bytes, sign: str | None, sign_type: str, keys: KeyRing | RSAPublicKey, *,
                cert_sn: str | None = None) -> AlipayKey:
    """The key that signed `data` (a gateway answer's exact text), or SignatureInvalid."""
    _supported(sign_type)
    key = _ring(keys).verifying(data, decode_sign(sign), HASHES[sign_type](), cert_sn=cert_sn)
    if key is None:
        raise SignatureInvalid("signature does not verify with the app's Alipay public key")
    return key


def _supported(sign_type: str) -> None:
    if sign_type == "SM2":  # Alipay's other signing method (国密), with SM2 keys; no merchant need measured
        raise SignatureInvalid("sign_type SM2 is not supported: configure the app for RSA2")
    if sign_type not in HASHES:
        raise SignatureInvalid(f"unsupported sign_type {sign_type!r}")


def _ring(keys: KeyRing | RSAPublicKey) -> KeyRing:
    if isinstance(keys, KeyRing):
        return keys
    if not isinstance(keys, RSAPublicKey):
        raise SignatureInvalid("the configured Alipay key is not an RSA public key")
    return KeyRing.of(keys)


def decode_sign(sign: str | None) -> bytes:
    """The signature's bytes: base64, less the whitespace that the Alipay SDKs skip; nothing else is let by."""
    if not sign:
        raise SignatureInvalid("sign is missing")
    # Base64 has no spaces: one here is a '+' that the sender's extra url-decode turned into a space. That
    # repair comes first: the line breaks and tabs that gateways wrap a long value with (CRLF every 64 or 76
    # characters, a trailing newline) are then dropped, as every SDK's decoder drops them. Stripping all
    # whitespace first would lose those '+'.
    text = sign.replace(" ", "+")
    with contextlib.suppress(ValueError):  # the usual case, unwrapped: no pass over it character by character
        return base64.b64decode(text, validate=True)
    try:
        return base64.b64decode(text.translate(_WRAPPING), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise SignatureInvalid("sign is not valid base64") from None
