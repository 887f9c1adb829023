"""The lock shared by every process, on Redis: single holders through redis-py's `Lock`, a group commit's
batches through one script that hands the last batch's keys back and takes the next batch's in one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.lock import Lock

from ledger.adapters.locks.breaker import Breaker
from ledger.adapters.locks.holds import AsyncOrderLock, LockHold, ManyHold, nothing_to_close
from ledger.domain.errors import LockTimeout

log = logging.getLogger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)

# One round trip per batch: release the previous batch's keys (compare-and-delete with its token), then SET NX
# PX each key of this batch with this batch's token. The keys and tokens are those of redis-py's Lock, so
# single holders and batches exclude one another. KEYS: the n keys to release, then the keys to take.
# ARGV: n, the old token, the new token, the TTL in ms. Returns how many were released, then a flag per key.
_SWAP_MANY = """
local n = tonumber(ARGV[1])
local result = {0}
for i = 1, n do
  if redis.call('get', KEYS[i]) == ARGV[2] then redis.call('del', KEYS[i]); result[1] = result[1] + 1 end
end
for i = n + 1, #KEYS do
  if redis.call('set', KEYS[i], ARGV[3], 'NX', 'PX', ARGV[4]) then result[#result + 1] = 1
  else result[#result + 1] = 0 end
end
return result
"""


class RedisOrderLock:
    """The lock shared by every process, on redis-py's `Lock` (SET NX PX with a token, compare-and-delete).

    Build `client` with short timeouts and few retries, e.g. `socket_connect_timeout=0.5, socket_timeout=0.5,
    retry=Retry(NoBackoff(), 1)`: with Redis gone we run degraded instead of stalling, and redis-py's default
    retries would first spend seconds per request. After a failure Redis is left alone for `recheck_seconds`.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl_seconds: float,
        wait_seconds: float,
        recheck_seconds: float = 1.0,
        on_degraded: Callable[[Exception], object] | None = None,
        async_client: Callable[[], Any] | None = None,
    ) -> None:
        """`async_client`: makes a `redis.asyncio.Redis` like `client`, for `on_loop` (one per event loop).
        `on_degraded` is called where the outage is noticed, the serving event loop included: it must return at
        once (the composition root hands the alert to `AlertService.later`), never wait on a database."""
        self.breaker = Breaker(recheck_seconds=recheck_seconds, on_degraded=on_degraded)
        self._async_client = async_client
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._wait = wait_seconds
        self._swap_script = client.register_script(_SWAP_MANY)
        self._ttl_ms = int(ttl_seconds * 1000)

    @contextmanager
    def hold(self, key: str) -> Iterator[LockHold]:
        hold = LockHold()
        lock = self._acquire(key)
        if lock is None:
            hold.degraded = True
            yield hold
            return
        try:
            yield hold
        finally:
            self._release(lock, hold)

    def take_many(self, keys: Collection[str], *, release: ManyHold | None = None) -> ManyHold:
        hold, old, names, call = self._swap_args(keys, release)
        if not (old or names):
            return hold
        result = None if self.breaker.resting() else self._swapped(lambda: self._swap_script(**call))
        return self._settle(hold, release, old, names, result, keys)

    def release_many(self, hold: ManyHold) -> None:
        if hold.token and hold.held:
            self.take_many((), release=hold)

    def on_loop(self) -> AsyncOrderLock:
        """`take_many` awaited on the calling event loop, with a `redis.asyncio` client of that loop's own
        (from `async_client`): the group commit on the serving loop takes its locks without a thread. Without
        `async_client`, the sync client is called on a worker thread."""
        if self._async_client is None:
            async def in_thread(keys: Collection[str], *, release: ManyHold | None = None) -> ManyHold:
                return await asyncio.to_thread(self.take_many, keys, release=release)

            return AsyncOrderLock(in_thread, nothing_to_close)
        client = self._async_client()
        script = client.register_script(_SWAP_MANY)

        async def take_many(keys: Collection[str], *, release: ManyHold | None = None) -> ManyHold:
            hold, old, names, call = self._swap_args(keys, release)
            if not (old or names):
                return hold
            result = None
            if not self.breaker.resting():
                try:
                    result = await script(**call)
                except _UNREACHABLE as exc:
                    self.breaker.went_down(exc)
                else:
                    self.breaker.came_back()
            return self._settle(hold, release, old, names, result, keys)

        return AsyncOrderLock(take_many, client.aclose)

    def _swap_args(self, keys: Collection[str], release: ManyHold | None
                   ) -> tuple[ManyHold, list[str], dict[str, str], dict[str, Any]]:
        """The new hold, the names to release and to take, and the swap script's keys and args."""
        hold = ManyHold(token=uuid4().hex)
        old = [self._name(key) for key in release.held] if release and release.token else []
        names = {self._name(key): key for key in keys}
        call: dict[str, Any] = {"keys": [*old, *names],
                                "args": [len(old), release.token if release else "", hold.token, self._ttl_ms]}
        return hold, old, names, call

    def _swapped(self, call: Callable[[], Any]) -> Any:
        try:
            result = call()
        except _UNREACHABLE as exc:
            self.breaker.went_down(exc)
            return None
        self.breaker.came_back()
        return result

    def _settle(self, hold: ManyHold, release: ManyHold | None, old: list[str], names: dict[str, str],
                result: list[Any] | None, keys: Collection[str]) -> ManyHold:
        """Read the swap script's answer (None: Redis is down, go without the lock) into the holds."""
        if result is None:
            if release is not None and old:
                log.warning("could not release %d locks; they expire within %s s", len(old), self._ttl)
                release.held = set()
            hold.degraded, hold.held, hold.token = True, set(keys), ""
            return hold
        flags = [int(value) for value in result]
        if release is not None:
            release.expired, release.held = len(old) - flags[0], set()
            if release.expired:
                log.warning("%d of a batch's locks expired before it finished (ttl %s s)", release.expired, self._ttl)
        for name, flag in zip(names, flags[1:], strict=True):
            (hold.held if flag else hold.busy).add(names[name])
        return hold

    def _name(self, key: str) -> str:
        return f"{self._prefix}:lock:{key}"

    def status(self) -> dict[str, object]:
        return self.breaker.status()

    def check(self) -> dict[str, object]:
        try:
            self._client.ping()
        except _UNREACHABLE as exc:
            self.breaker.went_down(exc)
        else:
            self.breaker.came_back()
        return self.status()

    def _acquire(self, key: str) -> Lock | None:
        if self.breaker.resting():
            return None
        lock: Lock = self._client.lock(
            self._name(key),
            timeout=self._ttl,
            sleep=0.005,
            blocking=True,
            blocking_timeout=self._wait,
            # Enter and exit may run on different threads (async frameworks); the token belongs to the hold.
            thread_local=False,
        )
        try:
            acquired = lock.acquire()
        except _UNREACHABLE as exc:
            self.breaker.went_down(exc)
            return None
        self.breaker.came_back()
        if not acquired:
            raise LockTimeout(f"order {key!r} stayed locked for more than {self._wait} s")
        return lock

    def _release(self, lock: Lock, hold: LockHold) -> None:
        try:
            lock.release()
        except LockNotOwnedError:
            # Someone else may have written meanwhile; the store's version check turned that into a conflict.
            hold.expired = True
            log.warning("lock %s expired before its holder finished (ttl %s s)", lock.name, self._ttl)
        except _UNREACHABLE as exc:
            log.warning("could not release lock %s (%s); it expires within %s s", lock.name, exc, self._ttl)
            self.breaker.went_down(exc)
