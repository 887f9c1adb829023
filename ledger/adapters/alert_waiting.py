"""Where read-side alerts wait until every robot has them (see ledger.service.alerting): a Redis set when the rate
limiters are on Redis, so another process sends what this one could not; else a set in this process."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from dramatiq.rate_limits import RateLimiterBackend
from dramatiq.rate_limits.backends import RedisBackend


class WaitingAlerts(Protocol):
    """The ids of read-side alerts not yet sent to every robot."""

    def add(self, alert_id: str) -> None: ...

    def discard(self, alert_id: str) -> None: ...

    def ids(self) -> list[str]: ...


class MemoryWaitingAlerts:
    """In this process: without Redis, every sender runs here (`ledger projections run`, its worker threads)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, alert_id: str) -> None:
        with self._lock:
            self._ids.add(alert_id)

    def discard(self, alert_id: str) -> None:
        with self._lock:
            self._ids.discard(alert_id)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._ids)


class RedisWaitingAlerts:
    """A Redis set, so a worker process sends what the projections process could not."""

    def __init__(self, client: Any, key: str) -> None:
        self.client, self.key = client, key

    def add(self, alert_id: str) -> None:
        self.client.sadd(self.key, alert_id)

    def discard(self, alert_id: str) -> None:
        self.client.srem(self.key, alert_id)

    def ids(self) -> list[str]:
        return sorted(member.decode() for member in self.client.smembers(self.key))


def waiting_alerts(limits: RateLimiterBackend, key: str) -> WaitingAlerts:
    """Where the pace and the mutex are: on the rate limiters' Redis when they have one, else in this process."""
    if isinstance(limits, RedisBackend):
        return RedisWaitingAlerts(limits.client, key)
    return MemoryWaitingAlerts()
