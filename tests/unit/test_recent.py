"""A value read at most once per interval (ledger.adapters.recent.Recent), on a clock the test moves."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ledger.adapters.recent import Recent
from tests.support.waiting import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_value_is_read_once_per_interval_and_again_once_it_has_passed() -> None:
    clock, reads = Clock(), []

    def read() -> int:
        reads.append(None)
        return len(reads)

    recent = Recent(read, seconds=2.0, clock=clock)
    assert [recent.get() for _ in range(5)] == [1] * 5
    clock.now += 1.99
    assert (recent.get(), recent.kept()) == (1, 1)
    clock.now += 0.01
    assert (recent.kept(), recent.get(), len(reads)) == (None, 2, 2)


def test_nothing_is_kept_before_the_first_read() -> None:
    recent = Recent(lambda: 1, seconds=2.0, clock=Clock())
    assert recent.kept() is None


def test_a_read_that_fails_is_not_kept_so_the_next_caller_reads_again() -> None:
    answers = iter([ConnectionError("database down"), 7])

    def read() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    recent = Recent(read, seconds=2.0, clock=Clock())
    with pytest.raises(ConnectionError):
        recent.get()
    assert recent.get() == 7


class CountingLock:
    """A lock that counts the callers that have come to it, so a test knows who is waiting."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.arrived = inner, 0

    def __enter__(self) -> None:
        self.arrived += 1  # under the GIL; read only by the test's wait
        self.inner.acquire()

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


def test_callers_arriving_during_a_read_wait_for_it_and_share_its_value() -> None:
    reads: list[None] = []
    started, release = threading.Event(), threading.Event()

    def slow_read() -> int:
        reads.append(None)
        started.set()
        assert release.wait(10), "the test never let the read finish"
        return len(reads)

    recent = Recent(slow_read, seconds=2.0)
    lock = recent._lock = CountingLock(recent._lock)  # type: ignore[assignment]
    with ThreadPoolExecutor(8) as callers:
        first = callers.submit(recent.get)
        assert started.wait(5)
        others = [callers.submit(recent.get) for _ in range(7)]
        # The read finishes only once all seven have come to it: each arrived while it was under way.
        assert wait_until(lambda: lock.arrived == 8, 10, every=0.001)
        release.set()
        values = [first.result(), *(other.result() for other in others)]
    assert (values, len(reads)) == ([1] * 8, 1)
