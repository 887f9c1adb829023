"""Waiting, boundedly, for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], seconds: float = 20.0, *, every: float = 0.05) -> bool:
    """Whether `predicate` came true within `seconds` (asked `every` seconds, and once more at the end)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
