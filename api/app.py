"""The Starlette application: routes, error mapping and the ledger's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import (
    findings,
    health,
    messages,
    notify,
    operations,
    orders,
    parking,
    quarantine,
    reconciliation,
    reports,
    trade_queries,
)
from api.deadlines import QuietTimeouts
from api.errors import error_body
from api.floods import RefusalFloods
from api.views import LedgerJSON
from ledger.bootstrap import Ledger
from ledger.domain.errors import LedgerError, NothingToDo, OrderConflict, OrderNotFound, Rejected, RetryLater

STATUS = ((Rejected, 400), (OrderNotFound, 404), (OrderConflict, 409), (NothingToDo, 409), (RetryLater, 503))


async def ledger_error(request: Request, exc: Exception) -> Response:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    return LedgerJSON({"error": getattr(exc, "reason", "error"), "detail": str(exc)}, status_code=status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return LedgerJSON(error_body(exc), status_code=exc.status_code, headers=exc.headers)


def create_app(ledger: Ledger, *, close_on_shutdown: bool = True, refusal_threads: int = 8,
               background: Any = None) -> Starlette:
    """`background` (start, stop, status): what keeps the read model up to date beside serving, if anything."""
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            background.start()
        yield
        try:
            await ledger.service.stop_loop()
        finally:  # whatever the serving loop's intake raised, the rest still stops
            try:
                if background:
                    background.stop()
            finally:
                if close_on_shutdown:
                    ledger.close()

    app = Starlette(
        routes=[
            Route("/api/alipay/notify", notify.notify, methods=["POST"]),
            Route("/api/orders", orders.register, methods=["POST"]),
            # An out_trade_no may hold "/" (Alipay allows it), so these take the rest of the path. A path ending
            # in /history is always a history: the greedy match makes A/history/history the history of the
            # order "A/history"; the row of an order whose number ends in /history is not readable here (its
            # history's ?as_of_version is), the price of keeping the URLs Alipay's numbers as they are.
            Route("/api/orders/{out_trade_no:path}/history", orders.history, methods=["GET"]),
            *trade_queries.routes,
            Route("/api/orders/{out_trade_no:path}", orders.show, methods=["GET"]),
            *reports.routes,
            *reconciliation.routes,
            *findings.routes,
            *operations.routes,
            *parking.routes,
            *quarantine.routes,
            *messages.routes,
            Route("/api/rejected-callbacks", health.rejected, methods=["GET"]),
            Route("/api/projections", health.projections, methods=["GET"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
        ],
        exception_handlers={LedgerError: ledger_error, HTTPException: http_error},
        # A request that `ledger serve` cut off at its deadline ends quietly (api/deadlines.py).
        middleware=[Middleware(QuietTimeouts)],
        lifespan=lifespan,
    )
    app.state.ledger = ledger
    app.state.follower = background
    # Refused callbacks are logged by a few threads: a flood of forgeries cannot take every thread.
    app.state.refusal_limiter = anyio.CapacityLimiter(refusal_threads)
    # And beyond a rate per source address they are answered without being logged one by one.
    app.state.refusal_floods = RefusalFloods(ledger.settings.refusals_per_second)
    return app
