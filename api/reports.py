"""Finance's reads of the projection tables: order listing with keyset pagination, daily report, CSV."""

from starlette.routing import Route

routes: list[Route] = []
