"""The Redis lock's degraded mode: after a failure Redis is left alone for a while and orders go on
without the lock (the version check alone fences them); the outage and the recovery are each told once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Breaker:
    def __init__(self, *, recheck_seconds: float, on_degraded: Callable[[Exception], object] | None = None) -> None:
        """`on_degraded` is called where the outage is noticed, the serving event loop included: it must
        return at once, never wait on a database."""
        self._recheck = recheck_seconds
        self._on_degraded = on_degraded
        self._state = threading.Lock()
        self._degraded = False
        self._detail = "redis reachable"
        self._recheck_at = 0.0

    def resting(self) -> bool:
        """Redis failed moments ago: leave it alone until the recheck, and go without the lock."""
        with self._state:
            return self._degraded and time.monotonic() < self._recheck_at

    def went_down(self, exc: Exception) -> None:
        with self._state:
            self._recheck_at = time.monotonic() + self._recheck
            if self._degraded:
                return
            self._degraded = True
            self._detail = f"redis unreachable ({exc}); orders are processed without the lock"
        log.warning("Redis unreachable, running without per-order locks until it answers: %s", exc)
        if self._on_degraded is not None:
            try:
                self._on_degraded(exc)
            except Exception:  # an alert must never fail the request that noticed
                log.exception("could not raise the Redis-degraded alert")

    def came_back(self) -> None:
        with self._state:
            if not self._degraded:
                return
            self._degraded = False
            self._detail = "redis reachable"
        log.info("Redis answers again; per-order locks are back")

    def status(self) -> dict[str, object]:
        with self._state:
            return {"backend": "redis", "degraded": self._degraded, "detail": self._detail}
