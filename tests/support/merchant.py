"""A real local HTTP server standing in for the merchant's order system, for downstream delivery tests.

    with FakeMerchant(secret) as merchant:          # or merchant = FakeMerchant(secret).start(); merchant.close()
        client = DownstreamClient(merchant.url, secret)
        ...
        assert merchant.wait_for(lambda: "o1:payment" in merchant.keys_succeeded(), timeout=5)

Every POST (any path) is checked with `ledger.adapters.outbound.downstream.verify_signature` on its raw body,
then recorded in `merchant.requests` (a snapshot list of `Received`, in arrival order) *before* it is answered, so a
test that got the answer, or is waiting during a hang, already sees the record.

Answers, decided when a request arrives:
- a bad or missing `Ledger-Signature`: 401 at once; it consumes none of the programmed answers below;
- otherwise the next status queued by `fail_next(n, status=503)`, else the status set by
  `always_fail(status=503)`, else 200 `{"ok": true}`; a correctly signed body that is not JSON gets 400;
- `hang_next(seconds, times=1)`: the next `times` signed requests sleep `seconds` before answering
  (a slow system, or a ledger worker killed mid-delivery: the merchant still processed the request);
  `close()` wakes sleepers so it never waits for them;
- `recover()` forgets every programmed failure and hang.

Helpers: `url`, `keys_succeeded()` (idempotency keys of signed requests answered 2xx), `attempts_for(key)`
(its `Received`, in order), `wait_for(predicate, timeout=5.0) -> bool` (calls the zero-argument predicate
whenever a request arrives, until it is true or the timeout passes).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ledger.adapters.outbound.downstream import SIGNATURE_HEADER, SignatureMismatch, verify_signature

SECRET = "whsec-test"  # a signing secret for tests


@dataclass(frozen=True)
class Received:
    """One request as the merchant saw it; `body` is the parsed JSON, None unless signed and valid JSON."""

    monotonic: float
    wall: float
    idempotency_key: str | None
    body: Any
    signature_ok: bool
    status: int
    raw: bytes
    headers: Message  # case-insensitive: headers["content-type"]
    path: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that connects and sends nothing must not hold close() forever

    def do_POST(self) -> None:
        self.server.merchant._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's own assertions say what happened; no access log on stderr


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins handlers: no thread outlives the test
    merchant: FakeMerchant


class FakeMerchant:
    """The merchant's order system on 127.0.0.1:<free port>, verifying every delivery with `secret`."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._changed = threading.Condition(threading.RLock())  # RLock: predicates may call the helpers
        self._requests: list[Received] = []
        self._failures: deque[int] = deque()
        self._always: int | None = None
        self._hangs: deque[float] = deque()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.merchant = self
        port = self._server.server_port
        self.url = f"http://127.0.0.1:{port}/ledger/webhook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"fake-merchant-{port}")
        self._started = False

    def start(self) -> FakeMerchant:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._started:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeMerchant:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Programming the answers.
    def fail_next(self, n: int, status: int = 503) -> None:
        with self._changed:
            self._failures.extend([status] * n)

    def always_fail(self, status: int = 503) -> None:
        with self._changed:
            self._always = status

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self._changed:
            self._hangs.extend([seconds] * times)

    def recover(self) -> None:
        with self._changed:
            self._failures.clear()
            self._hangs.clear()
            self._always = None

    # Looking at what arrived.
    @property
    def requests(self) -> list[Received]:
        with self._changed:
            return list(self._requests)

    def keys_succeeded(self) -> set[str]:
        return {r.idempotency_key for r in self.requests
                if r.signature_ok and 200 <= r.status < 300 and r.idempotency_key is not None}

    def attempts_for(self, key: str) -> list[Received]:
        return [r for r in self.requests if r.idempotency_key == key]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _handle(self, handler: _Handler) -> None:
        arrived, wall = time.monotonic(), time.time()
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            verify_signature(handler.headers.get(SIGNATURE_HEADER), raw, self.secret)
            signature_ok = True
        except SignatureMismatch:
            signature_ok = False
        body, hang = None, 0.0
        with self._changed:
            if not signature_ok:
                status = 401
            else:
                hang = self._hangs.popleft() if self._hangs else 0.0
                status = self._failures.popleft() if self._failures else (self._always or 200)
                try:
                    body = json.loads(raw)
                except ValueError:
                    status = 400
            self._requests.append(Received(
                arrived, wall, handler.headers.get("Idempotency-Key"), body, signature_ok, status, raw,
                handler.headers, handler.path,
            ))
            self._changed.notify_all()
        if hang:
            self._closing.wait(hang)
        answer = json.dumps({"ok": 200 <= status < 300}).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)
        except OSError:
            pass  # the client gave up (its timeout) while we hung: exactly what a hang is for
