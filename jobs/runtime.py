"""Dramatiq on the ledger: the broker, the actors, the sweep, and the worker loop.

With LEDGER_REDIS_URL the broker is Redis and `ledger worker` processes (any number, on any hosts)
consume it. Without, the broker is in memory and its worker threads run in the process that dispatches
(`ledger projections run`, the child of `ledger serve`). Either way messages may be lost (a worker killed,
Redis restarted): what is due lives in the event store, and the sweep re-sends whatever is overdue.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

from ledger.adapters.outbound.robots import RobotError
from ledger.domain.trade_query import latest_due
from ledger.service.alerting import PACE_SECONDS
from ledger.service.certificates import alert_expiring
from ledger.service.open_findings import alert_open_findings
from projections.queries.operations import alerts_unsent, deliveries_due, queries_due

log = logging.getLogger(__name__)
QUEUE = "ledger"
# Trade queries and bill fetches wait on Alipay's gateway (up to its deadline each): they have a queue and threads of
# their own, so a slow gateway never holds up the deliveries and alerts of the main queue.
QUERY_QUEUE, QUERY_THREADS = "ledger-queries", 2
CERTIFICATE_CHECK = timedelta(hours=1)
FINDINGS_CHECK = timedelta(minutes=10)


def make_broker(redis_url: str | None, prefix: str) -> tuple[dramatiq.Broker, Any]:
    """The broker and the rate limiters' backend: on Redis when there is one, else in memory."""
    if redis_url:
        broker = RedisBroker(url=redis_url, namespace=f"{prefix}-dramatiq")  # type: ignore[no-untyped-call]
        return broker, RedisBackend(url=redis_url)
    return StubBroker(), StubBackend()  # type: ignore[no-untyped-call]


def _transient(retries: int, exc: BaseException) -> bool:
    # A robot's refusal that will stay (a bad signature) is not retried; everything else is, a few times.
    return retries < 5 and not (isinstance(exc, RobotError) and not exc.transient)


@dataclass
class Actors:
    deliver: dramatiq.Actor[Any, Any]
    send_alerts: dramatiq.Actor[Any, Any]
    query: dramatiq.Actor[Any, Any]
    fetch_bill: dramatiq.Actor[Any, Any]


def declare(broker: dramatiq.Broker, ledger: Any) -> Actors:
    """Thin actors taking ids; each one call on an application service."""

    def deliver(order_id: str, change: str) -> None:
        ledger.delivery.deliver(order_id, change)

    def send_alerts() -> None:
        if None in ledger.alerting.send_pending().values():
            # Held back by a robot's pace, or another worker is sending: look again when the pace allows.
            actors.send_alerts.send_with_options(delay=PACE_SECONDS * 1000)

    def query(order_id: str, step: int) -> None:
        # A gateway that fails is recorded as the step's outcome: the schedule's next step asks again.
        ledger.queries.run_step(order_id, step)

    def fetch_bill(app_id: str, day: str) -> None:
        # A failed attempt is recorded with when to try again: the sweep sends the next one then.
        if ledger.daily_bill is not None:
            ledger.daily_bill.run(app_id, date.fromisoformat(day))

    options: dict[str, Any] = {"broker": broker, "queue_name": QUEUE, "retry_when": _transient, "min_backoff": 1000,
               "max_backoff": 60_000}
    gateway_work = {**options, "queue_name": QUERY_QUEUE}
    actors = Actors(deliver=dramatiq.actor(actor_name="ledger.deliver", **options)(deliver),
                    send_alerts=dramatiq.actor(actor_name="ledger.send_alerts", **options)(send_alerts),
                    query=dramatiq.actor(actor_name="ledger.query", **gateway_work)(query),
                    fetch_bill=dramatiq.actor(actor_name="ledger.fetch_bill", **gateway_work)(fetch_bill))
    return actors


class Sweeper:
    """Every few seconds: re-send deliveries that are overdue (their message was lost), wake the alert
    sender while alerts wait, raise an alert for a projection that stopped moving, and send the alerts about
    the read side itself that are still waiting (itself, without the broker or the table:
    see ledger.service.alerting); send the trade queries and the daily bill job's attempts that are due. At start-up
    and then every CERTIFICATE_CHECK: an alert for each configured certificate that expires within 30 days
    (ledger.service.certificates); every FINDINGS_CHECK: an alert for each day whose reconciliation findings stay
    open past the grace (ledger.service.open_findings)."""

    def __init__(self, ledger: Any, *, every: float, grace: timedelta) -> None:
        self.ledger, self.every, self.grace = ledger, every, grace
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sweep", daemon=True)
        self._seen: dict[str, tuple[int, datetime]] = {}
        self._certificates_checked: datetime | None = None
        self._findings_checked: datetime | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def sweep_once(self) -> int:
        now = self.ledger.clock()
        settings, engine = self.ledger.settings, self.ledger.engine
        lease = timedelta(seconds=settings.delivery_lease_seconds)
        due = deliveries_due(engine, now=now, grace=self.grace, lease=lease)
        waiting = alerts_unsent(engine)
        if settings.downstream_url:
            for order_id, change in due:
                self.ledger.actors.deliver.send(order_id, change)
        try:
            self._send_queries(now)
        except Exception:  # the gateway's side must not stop the alerts and checks below
            log.exception("could not send the trade queries that are due")
        try:
            self._send_bill_fetches(now)
        except Exception:  # likewise
            log.exception("could not send the bill fetches that are due")
        if waiting and self.ledger.alerting.robots:
            self.ledger.actors.send_alerts.send()
        self._check_projections(now)
        if self.ledger.alerting.robots:
            self.ledger.alerting.send_read_side()  # never raises: what waits goes on waiting
        self._check_certificates(now)
        self._check_findings(now)
        return len(due)

    def _send_queries(self, now: datetime) -> None:
        """The trade queries whose step is due: each a message; the order's record says whether it still is."""
        queries = self.ledger.queries
        if queries is None:
            return
        apps = [app_id for app_id in self.ledger.settings.apps if queries.queryable(app_id)]
        if not queries.schedule:
            return  # LEDGER_QUERY_SCHEDULE=off
        for due in queries_due(self.ledger.engine, now=now, app_ids=apps, lease=queries.lease):
            if queries.queryable(due.app_id, due.auth_app_id):
                step = latest_due(due.registered_at, queries.schedule, due.query_step, UUID(due.order_id), now)
                self.ledger.actors.query.send(due.order_id, step)

    def _send_bill_fetches(self, now: datetime) -> None:
        """The daily job's attempts that are due (ledger.service.daily_bill): each a message; the day's record says
        whether it still is."""
        job = self.ledger.daily_bill
        for app_id, day in job.due(now) if job is not None else ():
            self.ledger.actors.fetch_bill.send(app_id, day.isoformat())

    def _check_findings(self, now: datetime) -> None:
        last = self._findings_checked
        if last is None or now - last >= FINDINGS_CHECK:
            grace = timedelta(hours=self.ledger.settings.findings_grace_hours)
            alert_open_findings(self.ledger.engine, self.ledger.alerting.raise_alert, now=now, grace=grace)
            self._findings_checked = now

    def _check_certificates(self, now: datetime) -> None:
        last = self._certificates_checked
        if last is None or now - last >= CERTIFICATE_CHECK:
            alert_expiring(self.ledger.settings.apps, self.ledger.alerting.raise_alert, now=now)
            self._certificates_checked = now  # once they are raised: a failure is tried again next sweep

    def _check_projections(self, now: datetime) -> None:
        head = self.ledger.store.ping()
        stall = timedelta(seconds=self.ledger.settings.projection_stall_seconds)
        for name, position in self.ledger.runner.positions().items():
            last, since = self._seen.get(name, (-1, now))
            if position != last or position >= head:
                self._seen[name] = (position, now)
            elif now - since >= stall:
                # Not sent one by one: the sweep sends them all in one message next.
                self.ledger.alerting.raise_alert("projection_stalled", name,
                                                 f"{name} has stayed at {position} for {now - since}, "
                                                 f"{head - position} events behind", send=False)

    def _run(self) -> None:
        try:
            self._check_certificates(self.ledger.clock())  # at start-up, not a sweep's wait later
        except Exception:
            log.exception("certificate check failed")
        while not self.stopping.wait(self.every):
            try:
                self.sweep_once()
            except Exception:  # the database or the broker may be down: try again next round
                log.exception("sweep failed")


class InProcessWorker:
    """Dramatiq worker threads in this process, for the embedded mode and for `ledger worker`."""

    def __init__(self, broker: dramatiq.Broker, *, threads: int = 4) -> None:
        self.broker, self.threads = broker, threads
        self.worker: dramatiq.Worker | None = None
        self.queries: dramatiq.Worker | None = None

    def start(self) -> None:
        self.broker.emit_after("process_boot")  # or time limits never start
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads, worker_timeout=100,
                                      queues={QUEUE})
        self.queries = dramatiq.Worker(self.broker, worker_threads=QUERY_THREADS, worker_timeout=100,
                                       queues={QUERY_QUEUE})
        self.worker.start()
        self.queries.start()

    def stop(self) -> None:
        # The broker belongs to the Ledger (it closes it): a new worker may start on it again.
        for worker in (self.worker, self.queries):
            if worker is not None:
                worker.stop(timeout=10_000)
        self.worker = self.queries = None
