"""The memory of verified bodies stays within its bytes, whatever is sent."""

from __future__ import annotations

import pytest

from ledger.service.memo import VerifiedMemo


def test_a_body_verified_once_is_not_checked_again() -> None:
    checked: list[bytes] = []
    memo = VerifiedMemo(lambda body: checked.append(body) or len(body))
    assert memo(b"abc") == memo(b"abc") == 3
    assert checked == [b"abc"]


def test_the_memory_never_holds_more_than_its_bytes_least_recently_used_going_first() -> None:
    memo = VerifiedMemo(len, total_bytes=1000, entry_bytes=400)
    for n in range(50):
        memo(bytes([n]) * 300)
        assert memo.size_bytes <= 1000
    checked: list[bytes] = []
    memo.check = lambda body: checked.append(body) or len(body)
    memo(bytes([49]) * 300)
    memo(bytes([0]) * 300)
    assert checked == [bytes([0]) * 300]


def test_a_body_larger_than_an_entry_is_checked_every_time_and_never_kept() -> None:
    memo = VerifiedMemo(len, total_bytes=10_000, entry_bytes=100)
    memo(b"x" * 101)
    assert memo.size_bytes == 0


def test_what_fails_its_check_is_not_remembered() -> None:
    def refuse(body: bytes) -> int:
        raise ValueError("forged")

    memo = VerifiedMemo(refuse)
    for _ in range(2):
        with pytest.raises(ValueError):
            memo(b"forged")
    assert memo.size_bytes == 0
