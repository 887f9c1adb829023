"""An event loop on a thread of its own, standing in for the server's, so that plain tests can drive the
group commit that runs on the serving loop (`LedgerService.record`) from ordinary threads."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from ledger.bootstrap import Ledger
from ledger.domain.errors import Rejected, UnknownOrder
from ledger.intake.batches import Batches, Recorded
from ledger.service.application import LedgerService, RecordCallback

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
        assert service.loop_intake is not None, "the group commit runs on the loop on PostgreSQL only"
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
        """`LedgerService.record_callback`, through the loop: what the HTTP endpoint does."""
        try:
            return self.submit(service, cmd).result(30)
        except (Rejected, UnknownOrder) as exc:
            service.refuse(cmd, exc)
            raise

    def route(self, ledger: Ledger) -> Ledger:
        """`record_callback` of this ledger goes through the loop, as the HTTP endpoint's does."""
        service = ledger.service
        service.record_callback = functools.partial(self.record_callback, service)  # type: ignore[method-assign]
        return ledger

    def stop(self, service: LedgerService) -> None:
        """What the server does as it shuts down: commit what is queued, close the loop's connections."""
        self.run(service.stop_loop()).result(30)

    def close(self) -> None:
        for service in self._served:
            self.stop(service)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Driver:
    """Which group commit a test drives: the thread, as sync callers do (no `serving_loop`), or the serving
    loop's task, as `ledger serve` does."""

    def __init__(self, serving_loop: ServingLoop | None) -> None:
        self.serving_loop = serving_loop

    def __call__(self, ledger: Ledger) -> Ledger:
        """The ledger, its `record_callback` going the driver's way."""
        return self.serving_loop.route(ledger) if self.serving_loop else ledger

    def intake(self, ledger: Ledger) -> Batches:
        intake = ledger.service.loop_intake if self.serving_loop else ledger.service.intake
        assert intake is not None
        return intake

    def submit(self, ledger: Ledger, body: bytes) -> Future[Recorded]:
        cmd = RecordCallback(body=body, remote_addr="198.51.100.7")
        if self.serving_loop:
            return self.serving_loop.submit(ledger.service, cmd)
        return ledger.service.submit(ledger.service.verify(cmd))

    def close(self, ledger: Ledger) -> None:
        """As the server shuts down: refuse what comes, commit what came."""
        ledger.service.close()
        if self.serving_loop:
            self.serving_loop.stop(ledger.service)
