"""The composition root: the one place that builds every adapter from the settings and wires them.

Nothing connects to anything at import time; tests call `build(settings, lock=..., ...)` with twins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio
import sqlalchemy as sa
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs.dispatch import Dispatcher
from jobs.runtime import Actors, InProcessWorker, Sweeper, declare, make_broker
from ledger.adapters.bills.folder import FolderBillFiles
from ledger.adapters.bills.memory import MemoryBillFiles
from ledger.adapters.bills.sql import SqlBillFiles
from ledger.adapters.eventstore.postgres import FailFastPostgresRecorder
from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.locks.local import LocalOrderLock
from ledger.adapters.locks.redis import RedisOrderLock
from ledger.adapters.metrics import Metrics, SharedState
from ledger.adapters.outbound.compose import compose
from ledger.adapters.outbound.downstream import BackoffPolicy, DownstreamClient
from ledger.adapters.outbound.robots import DingTalkRobot, WeComRobot
from ledger.adapters.recent import Recent
from ledger.adapters.refusals.quarantine import MemoryQuarantineLog, SqlQuarantineLog
from ledger.adapters.refusals.rejections import MemoryRejectionLog, RejectionLog, SqlRejectionLog
from ledger.adapters.sql.engine import make_engine
from ledger.config import Settings
from ledger.domain.bill_schedule import BillSchedule
from ledger.domain.errors import LedgerError
from ledger.intake.io import PostgresIO, StoreIO
from ledger.intake.loop import GroupCommit
from ledger.service.alerting import AlertService, BurstCounter
from ledger.service.application import LedgerService
from ledger.service.bills import DOWNLOAD_SECONDS, BillFiles, BillService
from ledger.service.daily_bill import DailyBillJob
from ledger.service.delivery import DeliveryService
from ledger.service.doctor import Doctor
from ledger.service.ports import Gateway, OrderLock
from ledger.service.reconciliation import ReconcileService
from ledger.service.trade_query import QueryService
from projections import all_projections
from projections.queries import gauges
from projections.queries.positions import position_reached
from projections.runner import Follower, ProjectionRunner

READINESS_SECONDS = 2.0


@dataclass
class Ledger:
    settings: Settings
    store: LedgerStore
    lock: OrderLock
    rejections: RejectionLog
    service: LedgerService
    engine: sa.Engine | None = None
    runner: ProjectionRunner | None = None
    closers: list[Any] = field(default_factory=list)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    broker: Any = None
    alerting: AlertService | None = None
    delivery: DeliveryService | None = None
    queries: QueryService | None = None
    bills: BillService | None = None
    reconcile: ReconcileService | None = None
    daily_bill: DailyBillJob | None = None
    actors: Actors | None = None
    metrics: Metrics | None = None
    # `/readyz`'s check of the event store, kept for READINESS_SECONDS (see _readiness).
    readiness: Recent[dict[str, object]] = field(init=False)

    def __post_init__(self) -> None:
        self.readiness = _readiness(self.store)

    def background(self, *, worker_threads: int = 4) -> list[Any]:
        """What runs beside the projections in the process that follows the log: the sweep, and without
        Redis the Dramatiq worker threads too (the in-memory broker exists only in this process)."""
        parts: list[Any] = [Sweeper(self, every=self.settings.sweep_seconds,
                                    grace=timedelta(seconds=min(30.0, self.settings.sweep_seconds)))]
        if self.settings.redis_url is None:
            parts.append(InProcessWorker(self.broker, threads=worker_threads))
        return parts

    def follower(self, poll_seconds: float = 1.0, gather_seconds: float = 0.05) -> Follower:
        """A thread that keeps the projections caught up; the caller starts and stops it."""
        if self.runner is None:
            raise LedgerError("the in-memory store has no projections")
        url = str(self.settings.database_url)
        return Follower(self.runner, listen_url=url if url.startswith("postgres") else None,
                        channel=getattr(self.store.recorder, "channel_name", ""), poll_seconds=poll_seconds,
                        gather_seconds=gather_seconds)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build(settings: Settings, *, store: LedgerStore | None = None, lock: OrderLock | None = None,
          rejections: RejectionLog | None = None, robots: list[Any] | None = None,
          gateway: Gateway | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Ledger:
    closers: list[Any] = []
    database_url = str(settings.database_url)
    if store is None:
        store = LedgerStore(env=persistence_env(database_url, create_table=database_url.startswith("memory")))
        closers.append(store.close)
    engine = make_engine(database_url) if not database_url.startswith("memory") else None
    if engine is not None:
        closers.append(engine.dispose)
    broker, limits = make_broker(str(settings.redis_url) if settings.redis_url else None,
                                 settings.redis_prefix)
    robots = _robots(settings) if robots is None else robots
    alerting = AlertService(store, engine, robots, limits,
                            dedup_seconds=settings.alert_dedup_seconds, clock=clock, compose=compose,
                            key_prefix=settings.redis_prefix)
    closers.append(alerting.later.close)
    if lock is None:
        # Through the alert thread: the lock notices on the serving loop, which must not wait on the database.
        lock = _lock(settings, closers, on_degraded=lambda exc: alerting.later.put(
            "redis_degraded", "redis", f"Redis is unreachable ({exc}); orders are taken with the version "
                                       "check alone until it answers"))
    if rejections is None:
        rejections = (SqlRejectionLog(engine, size=settings.rejected_log_size) if engine
                      else MemoryRejectionLog(size=settings.rejected_log_size))
    metrics = Metrics()
    service = LedgerService(store, lock, rejections, settings.apps, intake=_intake(settings, store, lock, metrics),
                            clock=clock, alert=alerting.raise_alert,
                            signature_burst=BurstCounter(settings.signature_alert_threshold), metrics=metrics,
                            quarantine=SqlQuarantineLog(engine) if engine else MemoryQuarantineLog(),
                            max_copies=settings.max_copies)
    closers.append(service.close)
    ledger = Ledger(settings, store, lock, rejections, service, engine, None, closers, clock, broker, alerting)
    ledger.metrics = metrics
    ledger.queries = QueryService(store, lock, gateway or _gateway(settings, clock), settings.apps,
                                  schedule=settings.query_schedule, clock=clock,
                                  # Longer than a call may take: a step taken is left to its worker that long.
                                  lease=timedelta(seconds=2 * settings.gateway_timeout_seconds + 60))
    ledger.bills = BillService(store, _bill_files(settings, engine), settings.apps, clock=clock,
                               gateway=ledger.queries.gateway)
    ledger.actors = declare(broker, ledger)
    actors = ledger.actors
    if settings.downstream_url and settings.downstream_secret:
        def schedule(order_id: str, change: str, seconds: float) -> None:
            actors.deliver.send_with_options(args=(order_id, change), delay=int(seconds * 1000))

        client = DownstreamClient(settings.downstream_url, str(settings.downstream_secret),
                                  timeout=settings.downstream_timeout_seconds)
        ledger.delivery = DeliveryService(
            store, client, BackoffPolicy(settings.retry_max, settings.retry_base_seconds, settings.retry_cap_seconds),
            lease=timedelta(seconds=settings.delivery_lease_seconds), clock=clock, schedule=schedule)
    if engine is not None:
        def deliver(order_id: str, change: str) -> None:
            actors.deliver.send(order_id, change)

        def wake_alerts() -> None:
            actors.send_alerts.send()

        dispatcher = Dispatcher(deliver=deliver if ledger.delivery else None, wake_alerts=wake_alerts,
                                raise_alert=alerting.raise_alert)

        def on_parked(stream: str, at: int, exc: BaseException) -> None:
            # Through the alert thread: the runner neither fails nor waits on recording (and sending) it.
            alerting.later.put("projection_parked", stream,
                               f"the read side holds back stream {stream} from position {at} ({type(exc).__name__}); "
                               "every other stream goes on. List and re-apply: ledger projections parked / unpark")

        ledger.runner = ProjectionRunner(store, engine, [*all_projections(
            downstream=ledger.delivery is not None, robots=bool(robots), query_schedule=settings.query_schedule),
            dispatcher], on_parked=on_parked)
        metrics.watch(_shared_state(store, engine, ledger.runner))
        ledger.reconcile = ReconcileService(store, ledger.bills, engine, settings.apps, clock=clock,
                                            caught_up=_read_model(engine, ledger.runner), queries=ledger.queries)
        ledger.daily_bill = _daily_bill(settings, ledger, clock)
    closers.append(broker.close)
    return ledger


def _daily_bill(settings: Settings, ledger: Ledger, clock: Callable[[], datetime]) -> DailyBillJob | None:
    """The daily bill job, for the apps that can ask the gateway; None with LEDGER_BILL_FETCH_AT=off."""
    assert ledger.queries is not None and ledger.bills is not None and ledger.reconcile is not None
    if settings.bill_fetch_at is None:
        return None
    queries = ledger.queries
    # An attempt is left to its worker longer than it may take: the gateway's answer (twice its deadline, as a
    # trade query's step), the download, the read model catching up for the match, and a margin.
    lease = 2 * settings.gateway_timeout_seconds + DOWNLOAD_SECONDS + ledger.reconcile.wait_seconds + 60
    return DailyBillJob(ledger.store, ledger.bills, ledger.reconcile,
                        app_ids=[app_id for app_id in settings.apps if queries.queryable(app_id)],
                        schedule=BillSchedule(settings.bill_fetch_at, settings.bill_deadline), lease_seconds=lease,
                        clock=clock)


def _read_model(engine: sa.Engine, runner: ProjectionRunner) -> Callable[[int], bool]:
    """Reconciliation reads the read model as of the log's head: its tables are brought there by the process
    asking (runners in several processes take turns), the dispatcher left to the process that follows the log."""
    names = tuple(p.name for p in runner.projections if p.tables)

    def caught_up(position: int) -> bool:
        runner.catch_up(tables_only=True)
        return position_reached(engine, position, names)

    return caught_up


def _readiness(store: LedgerStore) -> Recent[dict[str, object]]:
    """Whether the event store answers, read again at most every READINESS_SECONDS: `/readyz` is open to anyone,
    and a flood of it must not load the database."""

    def ping() -> dict[str, object]:
        try:
            return {"ok": True, "head": store.ping()}
        except Exception as exc:  # any failure to answer is "not ready"
            return {"ok": False, "error": type(exc).__name__}

    return Recent(ping, seconds=READINESS_SECONDS)


def _shared_state(store: LedgerStore, engine: sa.Engine, runner: ProjectionRunner) -> Callable[[], SharedState]:
    """What the metrics' gauges read at a scrape: the read model's counts, and each projection's lag."""

    def read() -> SharedState:
        counts = gauges.counts(engine)
        head = store.ping()
        return SharedState(deliveries=counts.deliveries, manual_queue=counts.manual_queue, alerts=counts.alerts,
                           lag={name: head - position for name, position in runner.positions().items()})

    return read


def _intake(settings: Settings, store: LedgerStore, lock: OrderLock, metrics: Metrics) -> GroupCommit:
    """The group commit, on each event loop that records: on the ledger's PostgreSQL recorder it awaits the
    database on a connection of the loop's own; on any other store it calls the sync store through a thread."""
    io = PostgresIO if isinstance(store.recorder, FailFastPostgresRecorder) else StoreIO
    return GroupCommit(lambda: io(store, lock), store, require_known_orders=settings.require_known_orders,
                       wait_seconds=settings.lock_wait_ms / 1000, metrics=metrics, max_copies=settings.max_copies)


def _gateway(settings: Settings, clock: Callable[[], datetime]) -> Gateway:
    """Alipay's gateway, for the apps whose private key is configured (the others are never queried)."""
    from ledger.adapters.gateway.http import HttpGateway

    return HttpGateway(settings.apps, settings.gateway_url, timeout=settings.gateway_timeout_seconds, clock=clock)


def _bill_files(settings: Settings, engine: sa.Engine | None) -> BillFiles:
    """Where imported bills' bytes are kept: LEDGER_BILL_DIR, else the database, else (the memory store) memory."""
    if settings.bill_dir is not None:
        return FolderBillFiles(settings.bill_dir)
    return SqlBillFiles(engine) if engine is not None else MemoryBillFiles()


def _robots(settings: Settings) -> list[Any]:
    robots: list[Any] = []
    if settings.dingtalk_url:
        robots.append(DingTalkRobot(str(settings.dingtalk_url),
                                    str(settings.dingtalk_secret) if settings.dingtalk_secret else None))
    if settings.wecom_url:
        robots.append(WeComRobot(str(settings.wecom_url)))
    return robots


# Short socket timeouts: an unreachable Redis must degrade the lock in well under a second.
_LOCK_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def _lock(settings: Settings, closers: list[Any], *, on_degraded: Callable[[Exception], object]) -> OrderLock:
    wait_seconds = settings.lock_wait_ms / 1000
    if settings.redis_url is None:
        return LocalOrderLock(wait_seconds=wait_seconds)
    url = str(settings.redis_url)
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), **_LOCK_TIMEOUTS)
    closers.append(client.close)
    return RedisOrderLock(client, prefix=settings.redis_prefix, ttl_seconds=settings.lock_ttl_seconds,
                          wait_seconds=wait_seconds, on_degraded=on_degraded,
                          # The serving loop's own client (an async client stays on the loop that made it).
                          async_client=lambda: redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 1),
                                                                            **_LOCK_TIMEOUTS))


def migrate(settings: Settings) -> None:
    """Bring the configured database to the code's schema (`ledger migrate`, and `serve` before it serves)."""
    from ledger.adapters.sql.migrations import migrate as to_head

    to_head(str(settings.database_url))


def database_problem(settings: Settings, *, create: bool) -> str | None:
    """One line saying why the configured database cannot be used (missing, unreachable), or None."""
    from ledger.adapters.sql.presence import database_problem as problem

    return problem(str(settings.database_url), create=create)


def doctor(settings: Settings, *, gateway: Gateway | None = None,
           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Doctor:
    """`ledger doctor`'s checks, on the configured gateway, database, Redis and notify URL."""
    from ledger.adapters.outbound.http import HttpClient
    from ledger.adapters.sql.presence import database_problem as problem

    def redis_problem() -> str | None:
        client = redis.Redis.from_url(str(settings.redis_url), **_LOCK_TIMEOUTS)
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"Redis does not answer ({type(exc).__name__}): check LEDGER_REDIS_URL and the server"
        finally:
            client.close()
        return None

    return Doctor(settings.apps, gateway or _gateway(settings, clock), settings.gateway_url,
                  database=lambda: problem(str(settings.database_url), create=False),
                  redis=redis_problem if settings.redis_url else None, notify_url=settings.public_notify_url,
                  clock=clock, http=HttpClient(timeout=settings.gateway_timeout_seconds, every_body=True))
