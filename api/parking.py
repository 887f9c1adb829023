"""Operators' view of the streams the read side holds back (projections.parking), and re-applying one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from api.auth import require
from api.views import LedgerJSON
from projections.runner import ProjectionRunner


def _runner(request: Request) -> ProjectionRunner:
    runner: ProjectionRunner | None = request.app.state.ledger.runner
    if runner is None:
        raise HTTPException(501, "this ledger keeps no read model (it runs on the in-memory store)")
    return runner


async def parked(request: Request) -> LedgerJSON:
    require(request, "operator")
    return LedgerJSON({"parked": await run_in_threadpool(_runner(request).parked)})


async def reapply(request: Request) -> LedgerJSON:
    require(request, "operator")
    stream_id = request.path_params["stream_id"]
    try:
        applied = await run_in_threadpool(_runner(request).reapply, stream_id)
    except LookupError:
        raise HTTPException(404, f"stream {stream_id} is not parked") from None
    except Exception as exc:  # still failing: it stays parked, and the operator hears why
        raise HTTPException(409, f"still fails, stays parked: {type(exc).__name__}: {exc}"[:500]) from None
    return LedgerJSON({"stream_id": stream_id, "reapplied_events": applied})


routes = [
    Route("/api/projections/parked", parked, methods=["GET"]),
    Route("/api/projections/parked/{stream_id}/reapply", reapply, methods=["POST"]),
]
