"""Alerts for operators: raised once per (kind, key, window), sent to the chat robots grouped and paced.

No robot gets more than 20 messages a minute (DingTalk and WeCom refuse beyond that, then throttle for
ten minutes). Each robot is paced at one message per 3 s, which is that limit spread evenly: alerts that
arrive meanwhile wait and go out together in the next message, rather than a burst using up the minute
and the rest waiting for it to pass. The pace and a mutex live in dramatiq's rate limiters, on Redis
when there is one, so every worker process shares them.

An alert raised on a hot path (the serving event loop, a lock noticing Redis is gone, the projections runner
parking a stream) goes through `AlertService.later`: a thread records it, so the caller never waits on the
database, and tries again until the event store takes it.

Alerts about the read side itself (READ_SIDE: a projection stalled, a stream parked) never depend on a
projection: the normal path finds what to send in the `alerts` table, which is read side too, and stops with
it. The process that raises one sends it at once (the same mutex and pace), and until every robot has it its
id waits in a small set that the sweep sends from (every sweep, in the projections process and in `ledger
worker`) and `send_pending` too, besides the table. The set lives where the pace and the mutex live: on
Redis when there is one, so an alert the projections process could not send goes out from a worker; else in
this process, which then runs every sender. Whether it was sent is read from the alert's own stream, as on
the normal path, so neither path sends it twice. Why a set rather than the log: finding unsent alerts in the
log means reading it from some position, which is what a projection does; a set of a few ids is one read.
Redis may lose the set (a restart without persistence): a stall is raised again every sweep while it lasts,
which puts its id back, and the table still carries anything else once it catches up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from dramatiq.rate_limits import ConcurrentRateLimiter, RateLimiterBackend, WindowRateLimiter
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from ledger.adapters.alert_waiting import WaitingAlerts, waiting_alerts
from ledger.adapters.eventstore.store import LedgerStore
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.domain.alert import Alert
from ledger.service.alert_queue import AlertQueue
from projections.queries.operations import alerts_not_sent_to

log = logging.getLogger(__name__)
ROBOT_MESSAGES_PER_MINUTE = 20
PACE_SECONDS = 60 // ROBOT_MESSAGES_PER_MINUTE
BATCH = 200
# Alerts about the read side: sent without reading a projection (see above).
READ_SIDE = frozenset({"projection_stalled", "projection_parked"})


def once_a_day(at: datetime) -> datetime:
    """The start of `at`'s day in China Standard Time: an alert raised `at=` it is raised once that day (its window
    is the same all day), for what stays true for hours and would otherwise come back every window."""
    return at.astimezone(CHINA_STANDARD_TIME).replace(hour=0, minute=0, second=0, microsecond=0)


class AlertService:
    def __init__(self, store: LedgerStore, engine: sa.Engine | None, robots: Sequence[Any],
                 limits: RateLimiterBackend, *, dedup_seconds: int, clock: Callable[[], datetime],
                 compose: Callable[[Sequence[dict[str, Any]]], str], key_prefix: str = "ledger",
                 waiting: WaitingAlerts | None = None) -> None:
        self.store, self.engine, self.robots, self.limits = store, engine, robots, limits
        self.key_prefix = key_prefix
        self.dedup_seconds, self.clock, self.compose = dedup_seconds, clock, compose
        self.later = AlertQueue(self.raise_alert, clock=clock)
        self.waiting = waiting or waiting_alerts(limits, f"{key_prefix}:alerts-read-side")

    def raise_alert(self, kind: str, key: str, message: str, at: datetime | None = None, *,
                    send: bool = True) -> bool:
        """Record the alert; False when the same one was raised already in this window. A read-side alert
        is also sent at once, unless `send` is False (a caller raising several sends them together)."""
        at = at or self.clock()
        window = int(at.timestamp()) // self.dedup_seconds
        alert = Alert(kind=kind, key=key[:200], window=window, message=message[:1000], raised_at=at)
        try:
            self.store.save(alert)
        except IntegrityError:
            if kind in READ_SIDE:
                self._watch(alert.id, recorded=False)
            return False
        log.warning("alert %s %s: %s", kind, key, message)
        if kind in READ_SIDE:
            self._watch(alert.id, recorded=True)
            if send:
                self.send_read_side()
        return True

    def send_pending(self) -> dict[str, int | None]:
        """Send every robot the alerts it has not had, as one message; returns how many each got, None for a
        robot whose pace held them back (the caller asks again after PACE_SECONDS)."""
        return {robot.name: self._send_alone(robot, table=True) for robot in self.robots}

    def send_read_side(self) -> dict[str, int | None]:
        """Send every robot the read-side alerts it has not had, reading no projection; None for a robot that
        did not take them now (its pace, another sender, its failure), which the next sweep tries again."""
        sent: dict[str, int | None] = {}
        for robot in self.robots:
            try:
                sent[robot.name] = self._send_alone(robot, table=False) if self.waiting.ids() else 0
            except Exception as exc:  # a robot's refusal or Redis: the sweep tries again, and must go on
                log.warning("read-side alerts not sent to %s yet (%s: %s)", robot.name, type(exc).__name__, exc)
                sent[robot.name] = None
        return sent

    def _send_alone(self, robot: Any, *, table: bool) -> int | None:
        mutex = ConcurrentRateLimiter(self.limits, f"{self.key_prefix}:alerts-send-{robot.name}",  # type: ignore[no-untyped-call]
                                      limit=1, ttl=60_000)
        with mutex.acquire(raise_on_failure=False) as alone:
            return self._send_to(robot, table=table) if alone else None

    def _send_to(self, robot: Any, *, table: bool) -> int | None:
        pending = self._read_side_for(robot.name)
        if table:
            waiting = {alert.id for alert in pending}
            pending += [alert for alert in self._pending(robot.name) if alert.id not in waiting]
        if not pending:
            return 0
        pace = WindowRateLimiter(self.limits, f"{self.key_prefix}:alerts-robot-{robot.name}",  # type: ignore[no-untyped-call]
                                 limit=1, window=PACE_SECONDS)
        with pace.acquire(raise_on_failure=False) as allowed:
            if not allowed:
                return None
            robot.send(self.compose([vars(a) for a in pending]))  # RobotError: the actor retries
        for alert in self._mark_sent(pending, robot.name):
            if alert.kind in READ_SIDE and self._everywhere(alert):
                self.waiting.discard(str(alert.id))
        return len(pending)

    def _pending(self, robot: str) -> list[Alert]:
        if self.engine is None:
            return []
        ids = alerts_not_sent_to(self.engine, robot, limit=BATCH)
        # The table may lag the log: the alert's own stream says whether it was sent.
        found: list[Alert] = [self.store.repository.get(UUID(i)) for i in ids]
        return [a for a in found if robot not in a.sent_to]

    def _read_side_for(self, robot: str) -> list[Alert]:
        """The waiting read-side alerts this robot has not had, from their streams; the set is tidied as it is read."""
        found: list[Alert] = []
        for alert_id in self.waiting.ids():
            try:
                alert: Alert = self.store.repository.get(UUID(alert_id))
            except AggregateNotFoundError:
                self.waiting.discard(alert_id)
                continue
            if self._everywhere(alert):
                self.waiting.discard(alert_id)  # sent by the normal path, which does not tidy the set
            elif robot not in alert.sent_to:
                found.append(alert)
        return found

    def _watch(self, alert_id: UUID, *, recorded: bool) -> None:
        """Keep a read-side alert's id among those waiting until every robot has it. Raised again (a stall, every
        sweep), it goes back in if not sent everywhere: the set may have been lost with Redis."""
        if not self.robots:
            return
        try:
            if recorded or not self._everywhere(self.store.repository.get(alert_id)):
                self.waiting.add(str(alert_id))
        except Exception as exc:  # Redis or the database: the alert is recorded, and the table still has it
            log.warning("read-side alert %s not kept for sending (%s: %s)", alert_id, type(exc).__name__, exc)

    def _everywhere(self, alert: Alert) -> bool:
        return all(robot.name in alert.sent_to for robot in self.robots)

    def _mark_sent(self, alerts: list[Alert], robot: str) -> list[Alert]:
        """Record in each alert's stream that `robot` has it; returns the alerts as recorded."""
        for alert in alerts:
            alert.mark_sent(robot)
        try:
            self.store.save(*alerts)
            return alerts
        except IntegrityError:
            # Another sender marked one of them meanwhile, for another robot (each robot has its own mutex):
            # mark each again on its stream as it stands, or it would be sent to this robot again.
            return [self._mark_one(alert.id, robot) for alert in alerts]

    def _mark_one(self, alert_id: UUID, robot: str, tries: int = 5) -> Alert:
        while True:
            alert: Alert = self.store.repository.get(alert_id)
            alert.mark_sent(robot)
            try:
                self.store.save(alert)
                return alert
            except IntegrityError:  # yet another sender: read the stream again, a few times
                tries -= 1
                if not tries:
                    raise


class BurstCounter:
    """Counts events in a sliding window in this process, e.g. signature failures a minute."""

    def __init__(self, threshold: int, seconds: float = 60.0) -> None:
        self.threshold, self.seconds = threshold, seconds
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def hit(self) -> bool:
        """Count one; True when the window now holds at least `threshold`."""
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            while self._times and self._times[0] < now - self.seconds:
                self._times.popleft()
            return len(self._times) >= self.threshold
