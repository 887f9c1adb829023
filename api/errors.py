"""The API's error answers: `{"error": <code>, "detail": ...}`, with a code a client can branch on."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException

# The code of an answer by its status, unless the raiser names a more specific one (ApiError).
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 501: "not_implemented", 503: "unavailable"}


class ApiError(HTTPException):
    """An HTTP error with its own code (e.g. `not_yet_projected`) and, if useful, a hint of what to do."""

    def __init__(self, status_code: int, code: str, detail: str, *, hint: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code, detail, headers=dict(headers) if headers else None)
        self.code, self.hint = code, hint


def error_body(exc: HTTPException) -> dict[str, str]:
    body = {"error": getattr(exc, "code", None) or CODES.get(exc.status_code, "error"), "detail": exc.detail}
    hint = getattr(exc, "hint", None)
    return {**body, "hint": hint} if hint else body
