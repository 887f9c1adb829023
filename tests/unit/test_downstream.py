"""The merchant-facing webhook's pure parts: signing and verifying, the JSON body, URLs refused before any
connection, the backoff policy (delivery against a local merchant is in tests/integration/test_downstream_client.py)."""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.adapters.outbound import downstream
from ledger.adapters.outbound.downstream import (
    BackoffPolicy,
    DownstreamClient,
    SignatureMismatch,
    sign,
    to_json,
    verify_signature,
)
from ledger.domain.errors import Rejected
from ledger.domain.outbox import RetryPolicy

SECRET = "whsec_test_secret"
BODY = b'{"amount":"12.30","order":"o1"}'
T = 1_700_000_000
# Computed once with hmac.new(SECRET, b"1700000000." + BODY, sha256), independently of the code under test.
KNOWN_V1 = "7fc6d7251b86f78f290968a1c1a29af9f8f43f6cb4c064e83d927d221728c0fc"


# Signing and verifying.

def test_a_body_signed_with_the_secret_verifies_with_it() -> None:
    verify_signature(sign(SECRET, BODY, T), BODY, SECRET, now=T)


def test_signature_matches_a_vector_computed_by_hand() -> None:
    by_hand = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert by_hand == KNOWN_V1
    assert sign(SECRET, BODY, T) == f"t=1700000000,v1={KNOWN_V1}"


def test_signature_mismatch_is_a_rejection() -> None:
    assert issubclass(SignatureMismatch, Rejected)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now"),
    [
        pytest.param(sign(SECRET, BODY, T), BODY + b" ", SECRET, T, id="tampered body"),
        pytest.param(sign(SECRET, BODY, T), BODY.replace(b"12.30", b"99.30"), SECRET, T, id="changed amount"),
        pytest.param(sign("another secret", BODY, T), BODY, SECRET, T, id="wrong secret"),
        pytest.param(sign(SECRET, BODY, T), BODY, SECRET, T + 301, id="older than tolerance"),
        pytest.param(sign(SECRET, BODY, T), BODY, SECRET, T - 301, id="future beyond tolerance"),
        pytest.param(f"v1={KNOWN_V1}", BODY, SECRET, T, id="missing t"),
        pytest.param("t=1700000000", BODY, SECRET, T, id="missing v1"),
        pytest.param(f"t=1700000000,v0={KNOWN_V1}", BODY, SECRET, T, id="other scheme only"),
        pytest.param(f"t=1700000000,t=1700000001,v1={KNOWN_V1}", BODY, SECRET, T, id="two timestamps"),
        pytest.param(f"t=+1700000000,v1={KNOWN_V1}", BODY, SECRET, T, id="signed timestamp"),
        pytest.param(f"t=abc,v1={KNOWN_V1}", BODY, SECRET, T, id="timestamp not a number"),
        pytest.param("garbage", BODY, SECRET, T, id="garbage"),
        pytest.param("", BODY, SECRET, T, id="empty"),
        pytest.param(None, BODY, SECRET, T, id="header absent"),
        pytest.param("t=1700000000,v1=签名", BODY, SECRET, T, id="non-ASCII signature"),
        pytest.param(f"t=1700000000,v1={KNOWN_V1.upper()}", BODY, SECRET, T, id="upper-case hex"),
    ],
)
def test_bad_signatures_raise_signature_mismatch(header: str | None, body: bytes, secret: str, now: int) -> None:
    with pytest.raises(SignatureMismatch):
        verify_signature(header, body, secret, now=now)


def test_timestamps_at_the_edge_of_the_tolerance_verify() -> None:
    header = sign(SECRET, BODY, T)
    verify_signature(header, BODY, SECRET, now=T + 300)
    verify_signature(header, BODY, SECRET, now=T - 300)
    verify_signature(header, BODY, SECRET, tolerance=10, now=T + 10)
    with pytest.raises(SignatureMismatch):
        verify_signature(header, BODY, SECRET, tolerance=10, now=T + 11)


def test_one_valid_v1_among_several_is_enough() -> None:
    wrong = sign("old secret", BODY, T).split(",")[1]
    verify_signature(f"t={T},{wrong},v1={KNOWN_V1},v0=abc", BODY, SECRET, now=T)
    verify_signature(f" t={T} , v1={KNOWN_V1} ", BODY, SECRET, now=T)


def test_verify_uses_the_current_time_by_default() -> None:
    verify_signature(sign(SECRET, BODY, int(time.time())), BODY, SECRET)
    with pytest.raises(SignatureMismatch):
        verify_signature(sign(SECRET, BODY, T), BODY, SECRET)


def test_empty_secret_and_non_integer_timestamp_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        sign("", BODY, T)
    with pytest.raises(ValueError):
        sign(SECRET, BODY, 1_700_000_000.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_signature(sign(SECRET, BODY, T), BODY, "", now=T)


# The JSON body.

def test_to_json_is_canonical_utf8_with_amounts_and_times_as_strings() -> None:
    payload = {"z": 1, "amount": Decimal("12.3"), "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "s": "咖啡"}
    assert to_json(payload) == '{"amount":"12.30","at":"2024-01-02T03:04:05+00:00","s":"咖啡","z":1}'.encode()


@pytest.mark.parametrize("bad", [Decimal("0.005"), Decimal("NaN"), Decimal("Infinity"), float("nan"), object()])
def test_to_json_refuses_to_round_money_or_emit_invalid_json(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        to_json({"amount": bad})


@pytest.mark.parametrize(
    "url", ["not a url", "file:///etc/passwd", "ftp://example.com/x", "http://", "http://h:99999/", "http://u:p@h/"]
)
def test_an_invalid_url_is_an_outcome_not_an_exception(url: str) -> None:
    outcome = DownstreamClient(url, SECRET).post({"order": "o1"}, "o1:payment")
    assert (outcome.ok, outcome.status) == (False, None)
    assert outcome.error.startswith("invalid URL")



# Backoff.

@pytest.fixture
def global_random() -> Iterator[None]:
    state = random.getstate()
    yield
    random.setstate(state)


def test_backoff_policy_satisfies_the_outbox_retry_policy() -> None:
    policy: RetryPolicy = BackoffPolicy()
    assert policy.max_retries == 3 and policy.delay(1) >= 30.0


@pytest.mark.usefixtures("global_random")
def test_delays_grow_strictly_for_retries_1_to_3_across_seeds() -> None:
    for jitter in (0.0, 0.25, 1.0):
        policy = BackoffPolicy(jitter=jitter)
        for seed in range(300):
            random.seed(seed)
            first, second, third = (policy.delay(n) for n in (1, 2, 3))
            assert first < second < third, (jitter, seed)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999, 1.0])
def test_even_the_worst_jitter_never_brings_a_later_retry_sooner_before_the_cap(
    jitter: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = BackoffPolicy(base_seconds=1.0, cap_seconds=1024.0, jitter=jitter)

    def extreme(pick_high: bool, retry: int) -> float:
        monkeypatch.setattr(downstream.random, "uniform", lambda low, high: high if pick_high else low)
        return policy.delay(retry)

    for retry in range(1, 11):  # 1 * 2**10 reaches the cap at retry 11
        assert extreme(True, retry) <= extreme(False, retry + 1)


@pytest.mark.usefixtures("global_random")
def test_delays_never_exceed_the_cap_with_its_jitter() -> None:
    policy = BackoffPolicy(max_retries=50, base_seconds=30.0, cap_seconds=3600.0, jitter=0.25)
    for seed in range(50):
        random.seed(seed)
        for retry in [*range(1, 40), 1100, 10**6]:
            assert 30.0 <= policy.delay(retry) <= 3600.0 * 1.25
    assert policy.delay(10**6) >= 3600.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"base_seconds": 0},
        {"base_seconds": -1.0},
        {"base_seconds": float("nan")},
        {"base_seconds": 10.0, "cap_seconds": 5.0},
        {"cap_seconds": float("inf")},
        {"jitter": -0.1},
        {"jitter": 1.01},
        {"jitter": float("nan")},
    ],
)
def test_a_backoff_policy_with_a_negative_zero_infinite_or_nan_setting_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_retries_count_from_one_so_a_delay_for_retry_zero_is_an_error() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy().delay(0)
