"""The in-process lock, the twin of `RedisOrderLock` for the embedded mode (one process) and for tests:
per-order mutual exclusion across threads."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from ledger.adapters.locks.holds import AsyncOrderLock, LockHold, ManyHold, nothing_to_close
from ledger.domain.errors import LockTimeout


class _Slot:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # holders plus waiters: the slot may go only when this is back to zero


class LocalOrderLock:
    """Per-order mutual exclusion across the threads of one process."""

    def __init__(self, *, wait_seconds: float) -> None:
        self._wait = wait_seconds
        self._guard = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[LockHold]:
        with self._guard:
            slot = self._slots.setdefault(key, _Slot())
            slot.users += 1
        try:
            if not slot.lock.acquire(timeout=self._wait):
                raise LockTimeout(f"order {key!r} stayed locked for more than {self._wait} s")
            try:
                yield LockHold()
            finally:
                slot.lock.release()
        finally:
            with self._guard:
                slot.users -= 1
                if slot.users == 0:
                    del self._slots[key]

    def take_many(self, keys: Collection[str], *, release: ManyHold | None = None) -> ManyHold:
        hold = ManyHold()
        with self._guard:
            for key in release.held if release else ():
                slot = self._slots[key]
                slot.lock.release()
                slot.users -= 1
                if slot.users == 0:
                    del self._slots[key]
            if release is not None:
                release.held = set()
            for key in keys:
                slot = self._slots.setdefault(key, _Slot())
                if slot.lock.acquire(blocking=False):
                    slot.users += 1
                    hold.held.add(key)
                else:
                    hold.busy.add(key)
        return hold

    def release_many(self, hold: ManyHold) -> None:
        self.take_many((), release=hold)

    def on_loop(self) -> AsyncOrderLock:
        """Taking never waits here (CPU only): the loop calls it directly."""
        async def take_many(keys: Collection[str], *, release: ManyHold | None = None) -> ManyHold:
            return self.take_many(keys, release=release)

        return AsyncOrderLock(take_many, nothing_to_close)

    @property
    def tracked_keys(self) -> int:
        """How many orders are held or waited on right now."""
        return len(self._slots)

    def status(self) -> dict[str, object]:
        return {"backend": "local", "degraded": False, "detail": "in-process lock, single process only"}

    def check(self) -> dict[str, object]:
        return self.status()
