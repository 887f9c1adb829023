"""Alipay's gateway over HTTP: each call one signed form POST, its answer believed once its signature verifies.

Through the project's one outbound client (ledger.adapters.outbound.http): one deadline bounds the whole call,
a redirect is never followed, the answer is read up to `MAX_ANSWER_BYTES`, proxies come from `https_proxy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ledger.adapters.gateway.exchange import (
    HEADERS,
    MAX_ANSWER_BYTES,
    GatewayApp,
    answer_of,
    app_of,
    request_body,
    too_large,
)
from ledger.adapters.outbound.http import HttpClient, OutboundError
from ledger.alipay.response import GatewayAnswer
from ledger.domain.errors import GatewayError


class HttpGateway:
    """`apps` by app_id (Settings.apps); `url` the gateway's (Settings.gateway_url); `timeout` seconds for a whole
    call, connect to last byte; `clock` gives the aware time each request is stamped with."""

    def __init__(self, apps: Mapping[str, GatewayApp], url: str, *, timeout: float,
                 clock: Callable[[], datetime], max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.apps, self.url, self.clock = apps, url, clock
        self._http = HttpClient(timeout, max_answer_bytes=max_answer_bytes)

    def call(self, app_id: str, method: str, biz_content: Mapping[str, Any], *, merchant: str = "") -> GatewayAnswer:
        app = app_of(self.apps, app_id)
        body = request_body(app, method, biz_content, self.clock(), merchant)
        try:
            answer = self._http.post(self.url, body, HEADERS)
        except OutboundError as exc:
            raise _error(exc, self._http.max_answer_bytes) from None
        return answer_of(app, method, answer.status, answer.body)


def _error(exc: OutboundError, cap: int) -> GatewayError:
    if exc.retryable:  # a timeout, a refused or reset connection, a TLS or proxy failure
        return GatewayError(f"the gateway did not answer: {exc}", reason="unavailable", retryable=True)
    if exc.status is not None:  # the one refusal of an answer that came: larger than the cap
        return too_large(cap)
    return GatewayError(f"the gateway cannot be called: {exc}", reason="invalid_url", retryable=False)
