"""Alerts raised on a hot path, recorded by a thread of their own (see ledger.service.alerting)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime

from eventsourcing.persistence import PersistenceError

log = logging.getLogger(__name__)


class AlertQueue:
    """Alerts to record on a thread of the queue's own: `put` never waits on the database (it is called on the
    serving event loop), and an alert the event store did not take (the database is down or slow too) is tried
    again, waiting `first_wait` seconds, then twice as long each time up to `max_wait`, until it goes in.

    Trying again never doubles an alert: its id comes from (kind, key, window), the window from the moment it
    was put, so a second try of one that went in finds it there (an IntegrityError, which `raise_alert` takes
    as "already raised"). At most `size` alerts wait; beyond that they are logged and dropped, never blocked on.
    """

    def __init__(self, raise_alert: Callable[..., bool], *, clock: Callable[[], datetime], size: int = 100,
                 first_wait: float = 0.5, max_wait: float = 30.0) -> None:
        self.raise_alert, self.clock = raise_alert, clock
        self.first_wait, self.max_wait = first_wait, max_wait
        self._queue: queue.Queue[tuple[str, str, str, datetime] | None] = queue.Queue(maxsize=size)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def put(self, kind: str, key: str, message: str) -> None:
        """Hand the alert to the thread (started by the first one): returns at once, whatever the database."""
        if self._closed.is_set():
            log.error("alert %s %s raised after shutdown, not recorded: %s", kind, key, message)
            return
        try:
            self._queue.put_nowait((kind, key, message, self.clock()))
        except queue.Full:
            log.error("%d alerts wait to be recorded; dropped %s %s: %s", self._queue.maxsize, kind, key, message)
            return
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alert-queue", daemon=True)
                self._thread.start()

    @property
    def pending(self) -> int:
        """Alerts put and not yet recorded (nor given up on at shutdown)."""
        return self._queue.unfinished_tasks

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread: what waits gets one more try (within `timeout` in all), then is logged as lost."""
        self._closed.set()
        with self._starting:
            thread = self._thread
        if thread is None:
            return
        # Wakes the thread if it waits for work; a full queue keeps it busy, and it stops once that is empty.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(block=not self._closed.is_set())  # once closed, nothing more comes
            except queue.Empty:
                return
            try:
                if item is None:
                    return
                self._record(*item)
            finally:
                self._queue.task_done()

    def _record(self, kind: str, key: str, message: str, at: datetime) -> None:
        wait = self.first_wait
        while True:
            try:
                self.raise_alert(kind, key, message, at=at)
                return
            except PersistenceError as exc:
                if self._closed.is_set():
                    log.error("shutting down: alert %s %s not recorded (%s): %s", kind, key, exc, message)
                    return
                log.warning("alert %s %s not recorded yet (%s); trying again in %.1f s", kind, key, exc, wait)
            except Exception:
                log.exception("alert %s %s could not be recorded: %s", kind, key, message)
                return
            self._closed.wait(wait)  # close() cuts the wait short, for one last try
            wait = min(wait * 2, self.max_wait)
