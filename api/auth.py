"""Bearer tokens from `LEDGER_API_TOKENS`: 401 without a valid token, 403 with a token of the wrong role."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request


def roles_of(tokens: Mapping[str, frozenset[str]], presented: str) -> frozenset[str]:
    found: frozenset[str] = frozenset()
    # Compare against every token in constant time, so timing tells nothing about which one nearly matched.
    for token, roles in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = roles
    return found


def require(request: Request, *allowed: str) -> str:
    """The caller's role if it is one of `allowed`; raises 401 or 403 otherwise."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    roles = roles_of(request.app.state.ledger.settings.api_tokens, presented.strip()) \
        if scheme.lower() == "bearer" and presented.strip() else frozenset()
    if not roles:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    granted = sorted(roles & set(allowed))
    if not granted:
        raise HTTPException(403, f"this needs one of the roles {', '.join(allowed)}")
    return granted[0]
