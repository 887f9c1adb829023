"""The per-source rate of refused notifications: a token bucket per address, and one summing-up line per
source instead of a line per refusal. On a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from api.floods import RefusalFloods, floods_count
from ledger.domain.errors import MalformedNotification, SellerMismatch, SignatureInvalid, Unbookable, UnknownOrder

FORGER, OTHER = "203.0.113.66", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def floods(clock: Clock) -> RefusalFloods:
    return RefusalFloods(20, clock=clock)


def admitted(floods: RefusalFloods, source: str, times: int) -> int:
    return sum(floods.admit(source) for _ in range(times))


def test_a_source_gets_a_seconds_worth_of_refusals_at_once_then_the_rate(floods: RefusalFloods,
                                                                         clock: Clock) -> None:
    assert admitted(floods, FORGER, 100) == 20
    clock.now += 0.5
    assert admitted(floods, FORGER, 100) == 10
    clock.now += 60
    assert admitted(floods, FORGER, 100) == 20  # the bucket holds no more than one second's worth


def test_one_sources_flood_leaves_another_sources_refusals_alone(floods: RefusalFloods) -> None:
    admitted(floods, FORGER, 1000)
    assert admitted(floods, OTHER, 20) == 20


def test_suppressed_refusals_are_summed_up_in_one_line_per_source_and_interval(
        floods: RefusalFloods, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="api.floods"):
        for _ in range(10):  # one second of 100 forgeries a second from FORGER, 30 from OTHER
            admitted(floods, FORGER, 10)
            admitted(floods, OTHER, 3)
            clock.now += 0.1
        assert caplog.messages == []
        clock.now += 9
        floods.admit(OTHER)
        floods.admit(OTHER)
    # FORGER: 20 at once and 2 each 0.1 s, 38 of 100. OTHER stayed within its burst: nothing to say.
    assert caplog.messages == [f"62 refused notifications from {FORGER} suppressed in the last 10 s"]


def test_quiet_sources_are_forgotten_and_the_sources_kept_are_bounded(clock: Clock) -> None:
    floods = RefusalFloods(20, max_sources=100, clock=clock)
    for n in range(1000):
        floods.admit(f"2001:db8::{n:x}")
    assert len(floods.buckets) <= 100
    clock.now += 10
    floods.admit(FORGER)
    assert list(floods.buckets) == [FORGER]


@pytest.mark.parametrize(("error", "counted"), [
    (SignatureInvalid("forged"), True), (MalformedNotification("garbage"), True),
    (SellerMismatch("another merchant"), True),
    (Unbookable("signed by Alipay, beyond its limits"), False), (UnknownOrder("not registered yet"), False),
], ids=["bad-signature", "malformed", "seller-mismatch", "unbookable", "unknown-order"])
def test_only_notifications_that_fail_verification_count_towards_the_rate(error: Exception, counted: bool) -> None:
    assert floods_count(error) is counted  # type: ignore[arg-type]
