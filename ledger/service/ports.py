"""What the application service needs from the outside, and the values that cross those boundaries.

The per-order lock (`OrderLock`: `LocalOrderLock` or `RedisOrderLock` of ledger.adapters.locks, whose
values it hands out live there, in `holds`) and the intake (`Intake`: the group commit of ledger.intake)
are chosen by the composition root and handed in; the service imports neither implementation. A gateway's
answer (`GatewayAnswer`) is defined beside its verification, in ledger.alipay.response, since the gateway
adapters below the service make it; it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from ledger.adapters.locks.holds import AsyncOrderLock, LockHold, ManyHold
from ledger.alipay.response import GatewayAnswer as GatewayAnswer
from ledger.domain.message import MessageNotice
from ledger.domain.notice import TradeNotice


@dataclass(frozen=True)
class Verified:
    """A callback whose signature and merchant checked out, ready to be recorded."""

    notice: TradeNotice
    params: dict[str, str]
    received_at: datetime
    remote_addr: str
    delivery_id: str
    key: str = ""  # the fingerprint of the Alipay key that verified it (ledger.alipay.keyring)


@dataclass(frozen=True)
class VerifiedMessage:
    """A message of Alipay's message service whose signature checked out, ready to be recorded."""

    message: MessageNotice
    params: dict[str, str]
    received_at: datetime
    remote_addr: str
    delivery_id: str
    key: str = ""


@dataclass(frozen=True)
class RecordedMessage:
    stream_id: UUID  # the order's stream, or the message's own (ledger.domain.message.AppMessage)
    notify_id: str
    out_trade_no: str  # of the order that holds it; "" in a stream of its own
    version: int
    applied: bool  # it changed the order (a deposit-back new to it); False: recorded only
    recorded: bool  # False: a copy beyond LEDGER_MAX_COPIES, answered and counted, not recorded
    degraded: bool
    position: int


@dataclass(frozen=True)
class Recorded:
    order_id: UUID
    out_trade_no: str
    version: int
    status: str
    duplicate: bool
    degraded: bool
    position: int  # in the event log: read your own write with ?min_position=


class Intake(Protocol):
    """Records verified callbacks: `record` awaited on any event loop, answered once the commit holding
    the callback is done (or raising why not: UnknownOrder in strict mode, or a RetryLater)."""

    async def record(self, verified: Verified) -> Recorded: ...

    async def stop(self) -> None:
        """On the calling loop: commit what it queued, release its locks, close its connections."""
        ...

    def close(self) -> None:
        """From any thread: refuse every callback that comes after."""
        ...


class OrderLock(Protocol):
    def hold(self, key: str) -> AbstractContextManager[LockHold]: ...

    def take_many(self, keys: Collection[str], *, release: ManyHold | None = None) -> ManyHold:
        """Release a previous batch's hold, then take every free key of this one without waiting for the busy
        ones: one round trip for both (a group commit hands its locks back as it takes the next batch's)."""
        ...

    def release_many(self, hold: ManyHold) -> None: ...

    def on_loop(self) -> AsyncOrderLock:
        """`take_many` to await on the calling event loop (its own connections, closed by `close`)."""
        ...

    def status(self) -> dict[str, object]: ...

    def check(self) -> dict[str, object]:
        """Ask the backend now (one round trip), then report `status()`."""
        ...


class Gateway(Protocol):
    """Alipay's open-platform gateway (ledger.adapters.gateway): one signed request, one verified answer.

    A business failure (`40004` with its `sub_code`, such as ACQ.TRADE_NOT_EXIST) is a verified answer; no
    answer to believe raises GatewayError (ledger.domain.errors)."""

    def call(self, app_id: str, method: str, biz_content: Mapping[str, Any], *, merchant: str = "") -> GatewayAnswer:
        """`merchant`: a service provider's merchant (auth_app_id) whose trade it is, asked with its token."""
        ...
