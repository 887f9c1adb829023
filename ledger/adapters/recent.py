"""A value read again at most once per interval, however many callers ask: for what unauthenticated
endpoints (`/readyz`, `/metrics`) read from the database, so a flood of them costs one query per interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    """`read()`'s result, kept for `seconds`. Callers that arrive while it is being read again wait for that
    read and share its result; a read that raises is not kept, so the next caller tries again."""

    def __init__(self, read: Callable[[], T], *, seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self.seconds, self._clock = read, seconds, clock
        self._lock = threading.Lock()
        self._kept: tuple[float, T] | None = None  # (read at, value): one attribute, replaced whole

    def kept(self) -> T | None:
        """The kept value while it is fresh, else None; never reads (so it may be called on an event loop)."""
        kept = self._kept
        return kept[1] if kept is not None and self._clock() - kept[0] < self.seconds else None

    def get(self) -> T:
        """The kept value while it is fresh, else a new read (blocking)."""
        with self._lock:
            value = self.kept()
            if value is None:
                value = self._read()
                self._kept = (self._clock(), value)
            return value
