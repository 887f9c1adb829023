"""The gateway's in-memory twin: each call signed as for Alipay and handed to the stand-in gateway
(ledger.alipay.sandbox_gateway) in the same process, its answer verified as a real one is. No socket: for unit
tests (the embedded mode asks the configured gateway URL, the demo's stand-in over HTTP).

The stand-in's faults come out as the real client's would: an answer delayed past `timeout` is a timeout (at
once, without the wait), a redirect or an HTTP error the same GatewayError, an answer over the cap refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ledger.adapters.gateway.exchange import MAX_ANSWER_BYTES, GatewayApp, answer_of, app_of, request_body, too_large
from ledger.alipay.response import GatewayAnswer
from ledger.alipay.sandbox_gateway import SandboxGateway
from ledger.domain.errors import GatewayError


class MemoryGateway:
    def __init__(self, apps: Mapping[str, GatewayApp], sandbox: SandboxGateway, *, clock: Callable[[], datetime],
                 timeout: float = 10.0, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.apps, self.sandbox, self.clock = apps, sandbox, clock
        self.timeout, self.max_answer_bytes = timeout, max_answer_bytes

    def call(self, app_id: str, method: str, biz_content: Mapping[str, Any], *, merchant: str = "") -> GatewayAnswer:
        app = app_of(self.apps, app_id)
        reply = self.sandbox.handle("", request_body(app, method, biz_content, self.clock(), merchant))
        if reply.delay >= self.timeout:
            raise GatewayError(f"the gateway did not answer: timeout after {float(self.timeout)} s",
                               reason="unavailable", retryable=True)
        if 200 <= reply.status < 300 and len(reply.body) > self.max_answer_bytes:
            raise too_large(self.max_answer_bytes)
        return answer_of(app, method, reply.status, reply.body if 200 <= reply.status < 300 else b"")
