"""Helpers for alerts about the read side: a ledger wired to the fake DingTalk robot with a quick stall check,
the sweep and a worker as context managers, what the robot was told, and an event store that refuses alerts."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import OperationalError

from jobs.runtime import InProcessWorker, Sweeper
from ledger.bootstrap import Ledger
from ledger.domain.alert import Alert
from projections.tables import alerts
from tests.support.robots import ROBOT_SECRET, FakeDingTalk

STALL_SECONDS = 0.3


def robot_env(robot: FakeDingTalk) -> dict[str, str]:
    """Alerts to `robot`; a projection counts as stalled after STALL_SECONDS without moving."""
    return {"LEDGER_ALERT_DINGTALK_URL": robot.url, "LEDGER_ALERT_DINGTALK_SECRET": ROBOT_SECRET,
            "LEDGER_PROJECTION_STALL_SECONDS": str(STALL_SECONDS)}




@contextlib.contextmanager
def sweeping(ledger: Ledger, every: float = 0.1) -> Iterator[Sweeper]:
    """The sweep running, as beside the projections (and in `ledger worker`); stopped on leaving."""
    sweeper = Sweeper(ledger, every=every, grace=timedelta(seconds=every))
    sweeper.start()
    try:
        yield sweeper
    finally:
        sweeper.stop()


@contextlib.contextmanager
def working(ledger: Ledger) -> Iterator[InProcessWorker]:
    """Dramatiq worker threads on the ledger's broker, as the embedded mode or `ledger worker` runs them."""
    worker = InProcessWorker(ledger.broker, threads=2)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def told(robot: FakeDingTalk, kind: str) -> list[str]:
    """The message of each alert of `kind` the robot was told, once per time it was told."""
    return re.findall(rf"^- \[{kind}\] (.*)$", "\n".join(robot.texts), re.MULTILINE)


def stalled_told(robot: FakeDingTalk) -> Counter[str]:
    """How many times the robot was told of each stalled projection, by name."""
    return Counter(message.split()[0] for message in told(robot, "projection_stalled"))


def alerts_in_messages(robot: FakeDingTalk) -> int:
    """The alerts the robot's messages say they carry, added up (each message starts with its count)."""
    return sum(int(match) for text in robot.texts for match in re.findall(r"Ledger alerts: (\d+)", text))


def alert_rows(ledger: Ledger) -> list[dict[str, Any]]:
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(alerts)).mappings()]


def robot_name(ledger: Ledger) -> str:
    assert ledger.alerting is not None
    return str(ledger.alerting.robots[0].name)


class RefusingStore:
    """Stands in for the alert service's event store: refuses the first `refusals` saves of an alert, as a
    database that is down would; everything else goes to the real store."""

    def __init__(self, store: Any, refusals: int) -> None:
        self.store, self.refusals = store, refusals

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if self.refusals and any(isinstance(obj, Alert) for obj in objs):
            self.refusals -= 1
            raise OperationalError("couldn't get a connection after 2.00 sec")
        return self.store.save(*objs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
