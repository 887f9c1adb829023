"""What a lock hands out: the key of an order's lock, a single holder's hold, and a group commit's batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


def lock_key(app_id: str, out_trade_no: str, merchant: str = "") -> str:
    """The one name of an order's lock: every path that changes an order must take this same key."""
    if merchant and merchant != app_id:  # a service provider's merchant (ISV): see ledger.domain.order
        return f"{app_id}/{merchant}/{out_trade_no}"
    return f"{app_id}/{out_trade_no}"


@dataclass
class LockHold:
    """What a holder learns: `degraded` on entry (no lock was taken), `expired` after exit."""

    degraded: bool = False
    expired: bool = False


@dataclass
class ManyHold:
    """A group commit's locks: the keys it `held`, and those `busy` with another holder (not waited for)."""

    held: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    degraded: bool = False
    expired: int = 0  # after release: how many of the held keys had expired before it
    token: str = ""


@dataclass(frozen=True)
class AsyncOrderLock:
    """A lock's batch taking, awaited on one event loop; `close` (awaited) when that loop is done."""

    take_many: Callable[..., Awaitable[ManyHold]]
    close: Callable[[], Awaitable[None]]

    async def release_many(self, hold: ManyHold) -> None:
        if hold.held:
            await self.take_many((), release=hold)


async def nothing_to_close() -> None:
    return None
