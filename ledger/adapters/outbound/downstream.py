"""The merchant-facing webhook: sign an order change, POST it to the merchant's system, and back off.

Signing follows Stripe's webhooks (stripe-python `stripe/_webhook.py`): the header
`Ledger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, b"<t>." + raw body)>`.
A merchant's receiver checks it with `verify_signature` before it parses the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from ledger.adapters.outbound.http import HttpClient, OutboundError
from ledger.domain.errors import Rejected

SIGNATURE_HEADER = "Ledger-Signature"
SCHEME = "v1"
CENT = Decimal("0.01")


class SignatureMismatch(Rejected):
    """The Ledger-Signature header is malformed, too old or too new, or matches no v1 signature."""

    reason = "signature_mismatch"


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Ledger-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        # A float would sign "1700000000.5." and no receiver could parse the header back.
        raise ValueError("timestamp must be a non-negative int of unix seconds")
    return f"t={timestamp},{SCHEME}={_digest(secret, body, timestamp)}"


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not isinstance(header, str):
        raise SignatureMismatch(f"missing {SIGNATURE_HEADER} header")
    stamps, signatures = [], []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if key == "t" and sep:
            stamps.append(value)
        elif key == SCHEME and sep:
            signatures.append(value)
    # int() alone would accept "+1", "1_000", " 1" and non-ASCII digits: only plain digits are a timestamp.
    if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()) or not signatures:
        raise SignatureMismatch(f"malformed {SIGNATURE_HEADER} header")
    return int(stamps[0]), signatures


def verify_signature(
    header: str | None, body: bytes, secret: str, *, tolerance: int = 300, now: int | None = None
) -> None:
    """Raise `SignatureMismatch` unless `header` signs the raw `body` with `secret` within `tolerance` s of now.

    Call it on the bytes as received, before parsing them. Several `v1` entries are accepted (a sender
    rotating its secret signs with both); any one matching is enough.
    """
    if not secret:
        raise ValueError("an empty secret verifies nothing")
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    timestamp, signatures = _parse(header)
    expected = _digest(secret, body, timestamp).encode()
    # Bytes, not str: compare_digest refuses non-ASCII str, and "replace" keeps a hostile header comparable.
    if not any(hmac.compare_digest(expected, s.encode("utf-8", "replace")) for s in signatures):
        raise SignatureMismatch("no v1 signature matches the body")
    # Checked after the signature, so the timestamp compared is one the sender really signed.
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureMismatch("timestamp outside the tolerance")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot render {value!r} as an amount")
        try:
            cents = value.quantize(CENT)
        except InvalidOperation as exc:
            raise ValueError(f"cannot render {value!r} as an amount") from exc
        if cents != value:
            raise ValueError(f"amount {value} has more than two decimals; refusing to round money")
        return str(cents)
    if isinstance(value, date):  # datetime is a date
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(payload: Mapping[str, Any]) -> bytes:
    """Canonical UTF-8 JSON: sorted keys, compact, amounts as "12.30", datetimes in ISO 8601."""
    return json.dumps(payload, default=_default, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt got: ok on a 2xx answer; otherwise a short, secret-free error."""

    ok: bool
    status: int | None
    error: str = ""


class DownstreamClient:
    """POSTs signed order changes to one merchant URL through `ledger.adapters.outbound.http`; every network
    problem is an `Outcome`."""

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0, clock: Callable[[], float] = time.time):
        if not secret:
            raise ValueError("the downstream secret is empty")
        self._url, self._secret, self._timeout, self._clock = url, secret, timeout, clock
        self._http = HttpClient(timeout)

    def __repr__(self) -> str:
        return f"DownstreamClient(url=<{len(self._url)} chars>, secret=***, timeout={self._timeout})"

    def post(self, payload: Mapping[str, Any], idempotency_key: str) -> Outcome:
        """Send `payload` once. Raises only for a programming error (unserialisable payload, bad key)."""
        if not idempotency_key or not (idempotency_key.isascii() and idempotency_key.isprintable()):
            raise ValueError("idempotency_key must be non-empty printable ASCII")
        body = to_json(payload)
        headers = {
            SIGNATURE_HEADER: sign(self._secret, body, int(self._clock())),
            "Idempotency-Key": idempotency_key,
            "Content-Type": "application/json",
        }
        try:
            answer = self._http.post(self._url, body, headers)
        except OutboundError as exc:  # refused, timed out, a malformed URL, an answer over the size cap
            return Outcome(False, exc.status, str(exc))
        # A 3xx is a failure too: never a re-sent (or GET-downgraded) POST to wherever it points.
        return Outcome(not answer.failure, answer.status, answer.failure)


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with jitter, capped; satisfies `ledger.domain.outbox.RetryPolicy`.

    Retry n waits `min(cap, base * 2**(n-1))` stretched by a random factor in [1, 1 + jitter].
    Below the cap the unjittered delay doubles at each retry, so the longest retry n (b * (1 + jitter))
    is at most the shortest retry n+1 (2 * b) exactly when jitter <= 1: jitter spreads retries of
    many orders apart but never reorders one order's retries. At the cap every retry waits
    cap * [1, 1 + jitter], in no particular order.
    """

    max_retries: int = 3
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError("max_retries must be an int >= 0")
        # Written as "not (ok)" so that NaN, which fails every comparison, is refused too.
        if not (self.base_seconds > 0 and math.isfinite(self.base_seconds)):
            raise ValueError("base_seconds must be finite and > 0")
        if not (self.cap_seconds >= self.base_seconds and math.isfinite(self.cap_seconds)):
            raise ValueError("cap_seconds must be finite and >= base_seconds")
        if not (0 <= self.jitter <= 1):
            raise ValueError("jitter must be between 0 and 1 (above 1 a later retry could come sooner)")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry < 1:
            raise ValueError("retry counts from 1")
        try:
            unjittered = min(self.cap_seconds, self.base_seconds * 2.0 ** (retry - 1))
        except OverflowError:  # so many doublings that the cap was reached long ago
            unjittered = self.cap_seconds
        return unjittered * (1 + random.uniform(0, self.jitter))
