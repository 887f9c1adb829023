"""Local HTTP servers standing in for the DingTalk and WeCom robots, checking what the real ones check.

    with FakeDingTalk(secret="SEC...") as dingtalk:     # or FakeWeCom(); or fake.start() ... fake.close()
        DingTalkRobot(dingtalk.url, "SEC...").send("hello")
        dingtalk.texts       # ["hello"]: text of each accepted message, oldest first
        dingtalk.messages    # [{"body": <parsed JSON>, "received_at": <epoch seconds>}]
        dingtalk.throttled   # messages refused for the per-minute limit
        dingtalk.requests    # every request received, whatever the answer

- `url`: `http://127.0.0.1:PORT/robot/send?access_token=TESTTOKEN` (DingTalk),
  `http://127.0.0.1:PORT/cgi-bin/webhook/send?key=TESTKEY` (WeCom); set by start(), kept after close()
  (when it points at a robot that is down).
- Answers like the real robots, HTTP 200 with an errcode: 0 accepted; 130101 (DingTalk) / 45009 (WeCom) beyond
  `per_minute` (20) accepted messages in any rolling 60 s (refusals do not count; the real DingTalk then also
  holds the robot 10 minutes, the fake does not); DingTalk 300001 missing or wrong access_token, and with a
  secret 310000 for a missing, stale (over an hour off) or wrong timestamp/sign; WeCom 93000 missing or wrong
  key, 40058 markdown content over 4096 bytes (text over 2048); 40035 a body that is not a JSON message;
  HTTP 404 any other path.
- `fail_next(n=1, status=500, body=...)`: the next n requests get that answer before any check (status=200
  with a body of your own gives a chosen errcode, or a gateway's HTML page).
- `stall_next(seconds, n=1)`: the next n requests wait before answering (cut short by close()), for timeouts.
- `clock=`: the time source for the timestamp check and the rate window, so a test can move time on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, bytes]
TOKEN = "TESTTOKEN"  # the DingTalk access_token in `FakeDingTalk().url`
ROBOT_SECRET = "SECtest0123456789"  # a signing secret for tests (the reference's test vector)
KEY = "TESTKEY"  # the WeCom key in `FakeWeCom().url`


def _errcode(errcode: int, errmsg: str) -> Answer:
    return 200, json.dumps({"errcode": errcode, "errmsg": errmsg}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has hung up before its answer: expected in these tests, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _FakeRobot:
    """What both fakes share: the server thread, scripted failures and stalls, the rolling rate limit."""

    path = "/"
    credential = ""  # the query parameter that must carry `token`
    limit_errcode = 0

    def __init__(self, *, token: str, per_minute: int, clock: Callable[[], float]) -> None:
        self.token, self.per_minute, self._clock = token, per_minute, clock
        self.messages: list[dict[str, Any]] = []
        self.throttled = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._accepted_at: deque[float] = deque()
        self._scripted: deque[Answer] = deque()
        self._stalls: deque[float] = deque()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._port = 0
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("start the fake robot before asking for its URL")
        return f"http://127.0.0.1:{self._port}{self.path}?{self.credential}={self.token}"

    @property
    def texts(self) -> list[str]:
        with self._lock:
            bodies = [message["body"] for message in self.messages]
        return [body[body["msgtype"]].get("text", body[body["msgtype"]].get("content")) for body in bodies]

    def fail_next(self, n: int = 1, *, status: int = 500, body: bytes = b"Internal Server Error") -> None:
        with self._lock:
            self._scripted.extend([(status, body)] * n)

    def stall_next(self, seconds: float, n: int = 1) -> None:
        with self._lock:
            self._stalls.extend([seconds] * n)

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # releases stalled answers first, so shutdown does not wait for them
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def answer(self, target: str, raw: bytes) -> Answer:
        with self._lock:
            self.requests += 1
            stall = self._stalls.popleft() if self._stalls else 0.0
            scripted = self._scripted.popleft() if self._scripted else None
        if stall:
            self._closing.wait(stall)
        if scripted is not None:
            return scripted
        parts = urlsplit(target)
        if parts.path != self.path:
            return 404, b"Not Found"
        # parse_qs decodes once, as the real service does: a sign sent with a bare "+" arrives with a space.
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        if query.get(self.credential) != self.token:
            return self._bad_token()
        if refusal := self._refuse_query(query):
            return refusal
        try:
            body = json.loads(raw)
            content = body[body["msgtype"]]
        except (ValueError, TypeError, KeyError):
            content = None
        if not isinstance(content, dict):
            return _errcode(40035, "invalid json or missing msgtype")
        if refusal := self._refuse_content(body["msgtype"], content):
            return refusal
        return self._admit(body)

    def _admit(self, body: dict[str, Any]) -> Answer:
        with self._lock:
            now = self._clock()
            while self._accepted_at and self._accepted_at[0] <= now - 60:
                self._accepted_at.popleft()
            if len(self._accepted_at) >= self.per_minute:
                self.throttled += 1
                return _errcode(self.limit_errcode, "send too fast, exceed 20 times per minute")
            self._accepted_at.append(now)
            self.messages.append({"body": body, "received_at": now})
        return _errcode(0, "ok")

    def _bad_token(self) -> Answer:
        raise NotImplementedError

    def _refuse_query(self, query: dict[str, str]) -> Answer | None:
        return None

    def _refuse_content(self, msgtype: str, content: dict[str, Any]) -> Answer | None:
        return None


class FakeDingTalk(_FakeRobot):
    """DingTalk custom robot: access_token, and with a secret the timestamp and sign (加签) are checked."""

    path, credential, limit_errcode = "/robot/send", "access_token", 130101

    def __init__(
        self, secret: str | None, *, token: str = TOKEN, per_minute: int = 20, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(token=token, per_minute=per_minute, clock=clock)
        self.secret = secret

    def _bad_token(self) -> Answer:
        return _errcode(300001, "token is not exist")

    def _refuse_query(self, query: dict[str, str]) -> Answer | None:
        if self.secret is None:
            return None
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not timestamp.isdigit() or abs(self._clock() * 1000 - int(timestamp)) > 3_600_000:
            return _errcode(310000, "invalid timestamp")
        # Computed here on its own, from the timestamp string as received, not with the code under test.
        mac = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256)
        if not hmac.compare_digest(base64.b64encode(mac.digest()), sign.encode()):
            return _errcode(310000, "sign not match")
        return None


class FakeWeCom(_FakeRobot):
    """WeCom group robot: the `key` parameter is the credential; content sizes are checked."""

    path, credential, limit_errcode = "/cgi-bin/webhook/send", "key", 45009
    _MAX_BYTES = {"markdown": 4096, "text": 2048}

    def __init__(self, *, key: str = KEY, per_minute: int = 20, clock: Callable[[], float] = time.time) -> None:
        super().__init__(token=key, per_minute=per_minute, clock=clock)

    def _bad_token(self) -> Answer:
        return _errcode(93000, "invalid webhook url")

    def _refuse_content(self, msgtype: str, content: dict[str, Any]) -> Answer | None:
        if len(str(content.get("content", "")).encode()) > self._MAX_BYTES.get(msgtype, sys.maxsize):
            return _errcode(40058, f"content exceed max length {self._MAX_BYTES[msgtype]}")
        return None


def _handler_for(fake: _FakeRobot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = fake.answer(self.path, raw)
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if body.startswith(b"{") else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test output is no place for an access log

    return Handler
