"""An event loop on a thread of its own, standing in for the server's, so that plain tests can drive the
group commit as `ledger serve` does (`LedgerService.record` awaited on the serving loop) from ordinary
threads, and reach its batch rules' I/O to wrap it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar
from uuid import UUID

from ledger.adapters.locks.holds import ManyHold
from ledger.bootstrap import Ledger
from ledger.domain.errors import Rejected, UnknownOrder
from ledger.domain.order import Order
from ledger.intake.loop import GroupCommit
from ledger.intake.rules import BatchIO
from ledger.service.application import LedgerService, RecordCallback
from ledger.service.ports import Recorded

T = TypeVar("T")


class ServingLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="serving-loop", daemon=True)
        self._thread.start()
        self._served: list[LedgerService] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def submit(self, service: LedgerService, cmd: RecordCallback) -> Future[Recorded]:
        """Verify here, record on the loop; returns once the callback is queued there, as an HTTP request's
        is before the next one is read. The future is answered after the commit (or with why not);
        cancelling it cancels the request."""
        if service not in self._served:
            self._served.append(service)
        recording = service.record(service.verify(cmd))

        async def queued() -> asyncio.Task[Recorded]:
            task = asyncio.ensure_future(recording)
            await asyncio.sleep(0)  # the task's first step runs first: it queues the callback
            return task

        task = self.run(queued()).result(10)
        answer: Future[Recorded] = Future()

        def settle(done: asyncio.Task[Recorded]) -> None:
            if answer.done():  # cancelled here first
                return
            if done.cancelled():
                answer.cancel()
            elif (exc := done.exception()) is not None:
                answer.set_exception(exc)
            else:
                answer.set_result(done.result())

        answer.add_done_callback(lambda f: f.cancelled() and self.loop.call_soon_threadsafe(task.cancel))
        self.loop.call_soon_threadsafe(task.add_done_callback, settle)
        return answer

    def record_callback(self, service: LedgerService, cmd: RecordCallback) -> Recorded:
        """`LedgerService.record_callback`, through this loop: what the HTTP endpoint does."""
        try:
            return self.submit(service, cmd).result(30)
        except (Rejected, UnknownOrder) as exc:
            service.refuse(cmd, exc)
            raise

    def stop(self, service: LedgerService) -> None:
        """What the server does as it shuts down: commit what is queued, close the loop's connections."""
        self.run(service.stop_loop()).result(30)

    def close(self) -> None:
        for service in self._served:
            self.stop(service)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def wrap_io(ledger: Ledger, wrap: Callable[[BatchIO], BatchIO]) -> None:
    """Every batch of this ledger's group commit, on every loop that records from now on, goes through
    `wrap(io)`: how a test pauses, fails or counts a step of the batch rules."""
    intake = ledger.service.intake
    assert isinstance(intake, GroupCommit)
    make_io = intake.make_io
    intake.make_io = lambda: wrap(make_io())


class PassThroughIO:
    """A BatchIO that hands every call to `inner`: tests override the step they pause, fail or count."""

    def __init__(self, inner: BatchIO) -> None:
        self.inner = inner

    async def swap_locks(self, keys: set[str], release: ManyHold | None) -> ManyHold:
        return await self.inner.swap_locks(keys, release)

    async def load(self, order_ids: list[UUID]) -> dict[UUID, Order | None]:
        return await self.inner.load(order_ids)

    async def save(self, orders: list[Order]) -> int:
        return await self.inner.save(orders)

    async def log_head(self) -> int:
        return await self.inner.log_head()

    async def run_blocking(self, call: Callable[..., T], *args: Any) -> T:
        return await self.inner.run_blocking(call, *args)

    async def close(self) -> None:
        await self.inner.close()
