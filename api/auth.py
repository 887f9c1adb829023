"""Bearer tokens from `LEDGER_API_TOKENS`: 401 without a valid token, 403 with a token of the wrong role."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ledger.config import ApiToken


def holder_of(tokens: Mapping[str, ApiToken], presented: str) -> ApiToken | None:
    found = None
    # Compare against every token in constant time, so timing tells nothing about which one nearly matched.
    for token, holder in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = holder
    return found


def require(request: Request, *allowed: str) -> ApiToken:
    """Who the caller is (their token's role and name) if that role is one of `allowed`; raises 401 or 403
    otherwise."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    caller = holder_of(request.app.state.ledger.settings.api_tokens, presented.strip()) \
        if scheme.lower() == "bearer" and presented.strip() else None
    if caller is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    if caller.role not in allowed:
        raise HTTPException(403, f"this needs one of the roles {', '.join(allowed)}")
    return caller
