"""Decode the body of an Alipay notification into its parameters: exactly once, in its own charset."""

from urllib.parse import unquote_to_bytes

from ledger.domain.errors import MalformedNotification

MAX_BODY_BYTES = 64 * 1024
SUPPORTED_CHARSETS = frozenset({"utf-8", "gbk", "gb2312"})
DEFAULT_CHARSET = "utf-8"

# gb2312 is read with GBK, its superset (as the WHATWG encoding standard does): GB2312 characters have
# the same bytes in both, and a GB2312-labelled body holding a GBK-only character still decodes.
_CODECS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk"}


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a notification's `charset` value (absent or empty: utf-8); None if unsupported."""
    if not charset:
        return DEFAULT_CHARSET
    return _CODECS.get(charset.lower())


def parse_notification(body: bytes) -> dict[str, str]:
    """The notification's parameters, values exactly as sent (empty ones kept, nothing trimmed)."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise MalformedNotification("body must be bytes")
    body = bytes(body)
    if len(body) > MAX_BODY_BYTES:
        raise MalformedNotification(f"body is larger than {MAX_BODY_BYTES} bytes")
    if not body:
        raise MalformedNotification("body is empty")
    pairs = [_split_field(field) for field in body.split(b"&")]
    name, codec = _charset(pairs)
    params: dict[str, str] = {}
    for raw_key, raw_value in pairs:
        try:
            key, value = raw_key.decode(codec), raw_value.decode(codec)
        except UnicodeDecodeError:
            raise MalformedNotification(f"body does not decode as {name}") from None
        if not key:
            raise MalformedNotification("a form field has an empty name")
        if key in params:
            raise MalformedNotification(f"parameter {key!r} appears more than once")
        params[key] = value
    if not params.get("sign"):
        raise MalformedNotification("sign is missing")
    return params


def _split_field(field: bytes) -> tuple[bytes, bytes]:
    key, sep, value = field.partition(b"=")
    if not sep:
        raise MalformedNotification("a form field has no '='")
    return _unquote(key), _unquote(value)


def _unquote(raw: bytes) -> bytes:
    # Form encoding: '+' is a space, '%2B' a plus. Escapes are undone once, to bytes, and never again.
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _charset(pairs: list[tuple[bytes, bytes]]) -> tuple[str, str]:
    # Every supported charset is ASCII-compatible, so the charset field can be found before decoding.
    declared = [value for key, value in pairs if key == b"charset"]
    if len(declared) > 1:
        raise MalformedNotification("parameter 'charset' appears more than once")
    name = declared[0].decode("ascii", "replace") if declared else ""
    codec = codec_for(name)
    if codec is None:
        raise MalformedNotification(f"unsupported charset {name!r}")
    return name or DEFAULT_CHARSET, codec
