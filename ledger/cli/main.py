"""The `ledger` command: serve, migrate, keygen, simulate, history."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ledger.config import Settings, SettingsError
from ledger.domain.errors import LedgerError

PROJECTIONS_NICENESS = 10  # the read side's CPU priority below the intake's (see `projections run`)
DESCRIPTORS_KEPT = 100  # files a serving process keeps for itself (database, Redis, logs), beyond its connections

log = logging.getLogger("ledger.serve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="migrate the database, then serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=int, default=1,
                       help="serving processes sharing the port (PostgreSQL and Redis only); about one per core")
    commands.add_parser("migrate", help="bring the database's tables up to date")
    keygen = commands.add_parser("keygen", help="make a sandbox 'Alipay' key pair for simulate")
    keygen.add_argument("--dir", type=Path, default=Path(".sandbox"))
    sim = commands.add_parser("simulate", help="sign a notification as Alipay does and post it")
    sim.add_argument("--url", default="http://127.0.0.1:8000/api/alipay/notify")
    sim.add_argument("--private-key", type=Path, default=Path(".sandbox/alipay_private.pem"))
    sim.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID", ""))
    sim.add_argument("--out-trade-no")
    sim.add_argument("--trade-status", default="TRADE_SUCCESS")
    sim.add_argument("--total-amount", default="88.00")
    sim.add_argument("--seller-id", default=os.environ.get("LEDGER_ALIPAY_SELLER_ID") or "2088000000000001")
    sim.add_argument("--refund-fee")
    sim.add_argument("--out-biz-no")
    sim.add_argument("--charset", default="utf-8")
    sim.add_argument("--repeat", type=int, default=1, help="send the same notification this many times")
    proj = commands.add_parser("projections", help="the read model's tables")
    proj.add_argument("action", choices=["run", "rebuild", "status", "parked", "unpark"],
                      help="run: follow the log (a process of its own); rebuild: replay the whole log; "
                           "status: positions and lag; parked: the streams held back; unpark STREAM_ID: "
                           "re-apply a parked stream (after a fix) and let it go")
    proj.add_argument("stream_id", nargs="?", help="with unpark: the parked stream's id")
    queue = commands.add_parser("manual-queue", help="abandoned deliveries: list, retry or resolve them")
    queue.add_argument("action", choices=["list", "retry", "resolve"])
    queue.add_argument("out_trade_no", nargs="?")
    queue.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID", ""))
    queue.add_argument("--note", default="", help="why (required to resolve)")
    queue.add_argument("--who", default=os.environ.get("USER", "operator"))
    worker = commands.add_parser("worker", help="run Dramatiq workers and the sweep on the Redis broker")
    worker.add_argument("--threads", type=int, default=8)
    audit = commands.add_parser("audit", help="auditors' checks")
    audit.add_argument("action", choices=["verify"],
                       help="verify: re-verify Alipay's signature on every recorded callback")
    hist = commands.add_parser("history", help="print every event of an order's stream")
    hist.add_argument("out_trade_no")
    hist.add_argument("--app-id", default=os.environ.get("LEDGER_ALIPAY_APP_ID", ""))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 2
    except LedgerError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.adapters.sql.migrations import migrate
    from projections.process import ProjectionProcess

    settings = Settings.from_env(os.environ)
    settings.require_apps()
    if args.workers < 1:
        raise SettingsError("--workers must be at least 1")
    if args.workers > 1:
        settings.require_shared_services("--workers above 1")
    migrate(str(settings.database_url))
    background = ProjectionProcess() if settings.projections_inline else None
    options = serving_options(settings)
    if args.workers == 1:
        uvicorn.run(serving_app(background, settings), host=args.host, port=args.port, log_level=args.log_level,
                    access_log=False, **options)
        return 0
    # Several serving processes share the port (uvicorn's own supervisor restarts one that dies); the
    # projections run once, beside them.
    if background:
        background.start()
    try:
        uvicorn.run("ledger.cli.main:serving_app", factory=True, workers=args.workers, host=args.host, port=args.port,
                    log_level=args.log_level, access_log=False, **options)
    finally:
        if background:
            background.stop()
    return 0


def serving_app(background: Any = None, settings: Settings | None = None) -> Any:
    """The HTTP application of one serving process (called by uvicorn in each of `--workers` processes)."""
    from api.app import create_app
    from ledger.bootstrap import build

    app = create_app(build(settings or Settings.from_env(os.environ)), background=background)
    _tune_gc()
    # On the embedded default two threads share the GIL: the event loop (HTTP, signature checks) and the
    # group commit's thread, the critical path. When a commit's round trip returns, it waits for the GIL
    # until the loop lets go: up to the 5 ms default switch interval, several times per batch. 1 ms
    # measured +13 % throughput and a lower p99 (alternating pairs, when PostgreSQL used that thread too).
    sys.setswitchinterval(0.001)
    return app


def serving_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for a server that may face the internet (docs/internet-facing.md): a deadline for
    each request, a cap on connections, and X-Forwarded-For believed from LEDGER_TRUSTED_PROXIES only."""
    import functools

    from api.deadlines import DeadlineProtocol

    cap = connection_cap(settings.max_connections)
    return {
        "http": functools.partial(DeadlineProtocol, read_seconds=settings.request_read_seconds, max_connections=cap),
        # The protocol refuses connections beyond the cap; uvicorn's own limit (it counts the connection asking
        # too, hence one more) then bounds only the requests in flight.
        "limit_concurrency": cap + 1,
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies) or None,
    }


def connection_cap(wanted: int) -> int:
    """LEDGER_MAX_CONNECTIONS within the files this process may open: the soft limit is raised toward the hard
    one if it is short, and the cap lowered if it still is. Without that, connections beyond the limit fail
    at accept and the server stops accepting for a while (genuine notifications with them); within it, the
    excess are refused at once and the rest served."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + DESCRIPTORS_KEPT
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    cap = max(1, soft - DESCRIPTORS_KEPT)
    log.warning("LEDGER_MAX_CONNECTIONS is %d, but this process may open only %d files: at most %d connections "
                "(raise its limit, e.g. LimitNOFILE= or ulimit -n)", wanted, soft, cap)
    return cap


def _tune_gc() -> None:
    """Fewer, later garbage collections: every callback allocates thousands of short-lived objects, and
    the default thresholds ran a full collection often enough to be the notify path's p99 (measured
    under 32 connections: p99 145 ms with the defaults, 61-65 ms with these, and 5-10 % more throughput).
    What exists at startup (modules, settings, the composition root) is frozen out of collections."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def _migrate(args: argparse.Namespace) -> int:
    from ledger.adapters.sql.migrations import migrate

    migrate(str(Settings.from_env(os.environ).database_url))
    print("database is up to date")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from ledger.cli.simulate import keygen

    public = keygen(args.dir)
    print(f"sandbox key pair written to {args.dir}/ (the private half stays with `ledger simulate`)")
    print(f"export LEDGER_ALIPAY_PUBLIC_KEY_FILE={public}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from ledger.cli.simulate import simulate

    if not args.app_id:
        raise SettingsError("give --app-id or set LEDGER_ALIPAY_APP_ID")
    answers = simulate(args.url, args.private_key, args.app_id, out_trade_no=args.out_trade_no,
                       repeat=args.repeat, trade_status=args.trade_status, total_amount=args.total_amount,
                       seller_id=args.seller_id, refund_fee=args.refund_fee, out_biz_no=args.out_biz_no,
                       charset=args.charset)
    for status, body in answers:
        print(f"HTTP {status} {body}")
    return 0 if all(body == "success" for _, body in answers) else 1


def _history(args: argparse.Namespace) -> int:
    from api.views import event_view
    from ledger.bootstrap import build

    ledger = build(Settings.from_env(os.environ))
    try:
        events = ledger.service.history(args.app_id, args.out_trade_no)
    finally:
        ledger.close()
    if not events:
        print(f"no order {args.out_trade_no} for app {args.app_id}", file=sys.stderr)
        return 1
    for view in map(event_view, events):
        print(f"v{view['version']:<3} {view['recorded_at']:%Y-%m-%d %H:%M:%S} {view['type']}")
        data = view["data"]
        params = data.pop("params", None)
        for key, value in data.items():
            print(f"       {key}: {value}")
        if params:
            print("       params: " + " ".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign"))
    return 0


def _projections(args: argparse.Namespace) -> int:
    from ledger.adapters.sql.migrations import migrate
    from ledger.bootstrap import build

    settings = Settings.from_env(os.environ)
    migrate(str(settings.database_url))
    ledger = build(settings)
    try:
        if ledger.runner is None:
            raise SettingsError("projections need a SQL database (sqlite:/// or postgresql://)")
        if args.action == "rebuild":
            print(f"replayed {ledger.runner.rebuild()} events into fresh projection tables")
        elif args.action == "status":
            head = ledger.store.ping()
            for name, position in sorted(ledger.runner.positions().items()):
                print(f"{name:16} position {position:>10}  lag {head - position}")
            print(f"parked streams: {len(ledger.runner.parked())}")
        elif args.action == "parked":
            for row in ledger.runner.parked():
                print(f"{row['stream_id']}  from position {row['position']}  since {row['parked_at']:%Y-%m-%d %H:%M:%S}"
                      f"  {row['error']}")
        elif args.action == "unpark":
            if not args.stream_id:
                raise SettingsError("unpark needs the stream's id (see ledger projections parked)")
            try:
                print(f"re-applied {ledger.runner.reapply(args.stream_id)} events of {args.stream_id}; it goes on")
            except LookupError as exc:
                print(exc, file=sys.stderr)
                return 1
        else:
            _tune_gc()
            # The read side yields the CPU to the intake: on a busy host Alipay's callbacks are answered
            # first and the tables catch up after the peak. Measured on 2 shared cores at 32 connections:
            # +7 to +10 % notify throughput, lower p99, and the projections still kept up.
            os.nice(PROJECTIONS_NICENESS)
            _run_until_stopped([ledger.follower(), *ledger.background()])
    finally:
        ledger.close()
    return 0


def _run_until_stopped(parts: list[object]) -> None:
    """Start the parts (anything with start and stop), wait for SIGTERM or Ctrl-C, stop them in reverse."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for part in parts:
        part.start()  # type: ignore[attr-defined]
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for part in reversed(parts):
        part.stop()  # type: ignore[attr-defined]


def _worker(args: argparse.Namespace) -> int:
    from jobs.runtime import InProcessWorker, Sweeper
    from ledger.bootstrap import build

    settings = Settings.from_env(os.environ)
    if settings.redis_url is None:
        raise SettingsError("ledger worker needs LEDGER_REDIS_URL: without Redis the jobs run inside "
                            "ledger serve (its projections process)")
    ledger = build(settings)
    try:
        from datetime import timedelta

        _run_until_stopped([InProcessWorker(ledger.broker, threads=args.threads),
                            Sweeper(ledger, every=settings.sweep_seconds,
                                    grace=timedelta(seconds=min(30.0, settings.sweep_seconds)))])
    finally:
        ledger.close()
    return 0


def _manual_queue(args: argparse.Namespace) -> int:
    from api.operations import manual_queue_rows
    from ledger.bootstrap import build

    ledger = build(Settings.from_env(os.environ))
    try:
        if args.action == "list":
            rows = manual_queue_rows(ledger.engine)
            for row in rows:
                print(f"{row['app_id']} {row['out_trade_no']} {row['change']}: {row['attempts']} attempts, "
                      f"last error {row['last_error']!r}, since {row['updated_at']:%Y-%m-%d %H:%M:%S}")
            print(f"{len(rows)} abandoned deliveries")
            return 0
        if not args.out_trade_no:
            raise SettingsError(f"ledger manual-queue {args.action} needs the order's out_trade_no")
        act = ledger.service.manual_retry if args.action == "retry" else ledger.service.resolve
        changes = act(args.app_id, args.out_trade_no, who=f"{args.who} via CLI", note=args.note)
        print(f"{args.action}: {args.out_trade_no} {', '.join(changes)}")
        return 0
    finally:
        ledger.close()


def _audit(args: argparse.Namespace) -> int:
    from ledger.bootstrap import build
    from ledger.service.audit import recorded_callbacks_that_fail

    settings = Settings.from_env(os.environ)
    settings.require_apps()
    ledger = build(settings)
    counted: list[int] = []
    failures = 0
    try:
        for finding in recorded_callbacks_that_fail(ledger.store, settings.apps, counted=counted):
            failures += 1
            print(f"FAILED position {finding.position} app {finding.app_id} order {finding.out_trade_no} "
                  f"notify_id {finding.notify_id}: {finding.problem}")
    finally:
        ledger.close()
    print(f"checked {counted[0]} recorded callbacks: {failures} failed verification")
    return 1 if failures else 0


COMMANDS = {"serve": _serve, "migrate": _migrate, "keygen": _keygen, "simulate": _simulate, "worker": _worker,
            "projections": _projections, "history": _history, "audit": _audit, "manual-queue": _manual_queue}

if __name__ == "__main__":
    sys.exit(main())
