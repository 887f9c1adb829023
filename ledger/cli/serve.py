"""`ledger serve` and `ledger migrate`: the HTTP API in one or several processes, and the schema it needs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

from ledger.cli.common import Commands, Formatter, check_database
from ledger.cli.logs import logging_config
from ledger.config import Settings, SettingsError

DESCRIPTORS_KEPT = 100  # files a serving process keeps for itself (database, Redis, logs), beyond its connections

log = logging.getLogger("ledger.serve")


def add_commands(commands: Commands, common: argparse.ArgumentParser, formatter: Formatter) -> None:
    serve = commands.add_parser("serve", parents=[common], formatter_class=formatter,
                                help="migrate the database, then serve the HTTP API",
                                description="Migrate the database (creating a SQLite file if there is none), "
                                            "then serve the HTTP API; the read model is kept up to date beside "
                                            "it unless LEDGER_PROJECTIONS=separate.")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the TCP port to listen on")
    serve.add_argument("--workers", type=int, default=1,
                       help="serving processes sharing the port (PostgreSQL and Redis only); about one per core")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", parents=[common], formatter_class=formatter,
                                  help="bring the database's tables up to date (creating a SQLite file if need be)")
    migrate.set_defaults(run=_migrate)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from ledger.bootstrap import migrate
    from projections.process import ProjectionProcess

    settings.require_apps()
    if args.workers < 1:
        raise SettingsError("--workers must be at least 1")
    if args.workers > 1:
        settings.require_shared_services("--workers above 1")
    check_database(settings, create=True)
    migrate(settings)
    background = ProjectionProcess(log_level=args.log_level) if settings.projections_inline else None
    options = {**serving_options(settings), "host": args.host, "port": args.port, "log_level": args.log_level,
               "log_config": logging_config(args.log_level, settings.log_format), "access_log": settings.access_log}
    if args.workers == 1:
        uvicorn.run(serving_app(background, settings), **options)
        return 0
    # Several serving processes share the port (uvicorn's own supervisor restarts one that dies); the
    # projections run once, beside them.
    if background:
        background.start()
    try:
        uvicorn.run(f"{__name__}:serving_app", factory=True, workers=args.workers, **options)
    finally:
        if background:
            background.stop()
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.bootstrap import migrate

    check_database(settings, create=True)
    migrate(settings)
    print("database is up to date")
    return 0


def serving_app(background: Any = None, settings: Settings | None = None) -> Any:
    """The HTTP application of one serving process (called by uvicorn in each of `--workers` processes)."""
    from api.app import create_app
    from ledger.bootstrap import build

    app = create_app(build(settings or Settings.from_env(os.environ)), background=background)
    tune_gc()
    # On the embedded default two threads share the GIL: the event loop (HTTP, signature checks) and the
    # thread the group commit calls the sync store on (ledger.intake.io.StoreIO), the critical path. When a
    # store call returns, it waits for the GIL until the loop lets go: up to the 5 ms default switch
    # interval, several times per batch. 1 ms measured +13 % throughput and a lower p99 (alternating pairs,
    # when the group commit ran on a thread of its own, PostgreSQL too).
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


def tune_gc() -> None:
    """Fewer, later garbage collections: every callback allocates thousands of short-lived objects, and
    the default thresholds ran a full collection often enough to be the notify path's p99 (measured
    under 32 connections: p99 145 ms with the defaults, 61-65 ms with these, and 5-10 % more throughput).
    What exists at startup (modules, settings, the composition root) is frozen out of collections."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
