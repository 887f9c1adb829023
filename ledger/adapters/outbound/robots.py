"""Chat robots that alerts are sent to (DingTalk, WeCom), and `MemoryRobot`, their in-memory twin.

Both robots answer with an `errcode` in a JSON body, usually over HTTP 200: the body, not the status, is the answer.
Requests go through `ledger.adapters.outbound.http`: no redirects, a capped answer, one deadline per send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from ledger.adapters.outbound.compose import compose, truncate_utf8
from ledger.adapters.outbound.http import HttpClient, OutboundError
from ledger.domain.errors import LedgerError

__all__ = ["DingTalkRobot", "MemoryRobot", "Robot", "RobotError", "WeComRobot", "compose", "dingtalk_sign"]

RATE_LIMITED = frozenset({130101, 45009})  # DingTalk, WeCom: over 20 messages a minute
WECOM_MARKDOWN_MAX_BYTES = 4096


class RobotError(LedgerError):
    """A chat robot did not take the message; `transient` says whether sending it again later may work."""

    reason = "robot_error"

    def __init__(self, message: str, *, transient: bool, errcode: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.errcode = errcode


class Robot(Protocol):
    """Somewhere a text can be posted for people to read."""

    name: str

    def send(self, text: str) -> None: ...


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 of HMAC-SHA256, keyed with the secret, over "timestamp\\nsecret"."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class _Webhook:
    """POSTs JSON to a robot's URL and turns every way that can fail into one `RobotError`."""

    name = "webhook"

    def __init__(self, url: str, *, timeout: float, secret: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):  # no file: or custom schemes from a mistyped setting
            raise ValueError(f"{self.name} robot URL must be http or https")
        self._url, self._http = url, HttpClient(timeout)
        self._where = f"{self.name} robot at {parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        # The query carries the token (access_token, key): a credential, hidden like the secret.
        self._hidden = [value for _, value in parse_qsl(parts.query) if value] + ([secret] if secret else [])

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            answer = self._http.post(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        except OutboundError as exc:  # unreachable, timed out, a malformed URL, an answer over the size cap
            raise self._error(str(exc), transient=exc.retryable) from None
        if answer.failure:  # a redirect among them: its body, whatever errcode it says, is no robot's answer
            # 429 is a proxy's rate limit: it passes like the robot's own.
            raise self._error(answer.failure, transient=answer.status >= 500 or answer.status == 429)
        self._judge(answer.body)

    def _judge(self, body: bytes) -> None:
        try:
            answer = json.loads(body)
        except ValueError:
            raise self._error(f"answered {len(body)} bytes that are not JSON", transient=False) from None
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        if type(errcode) is not int:
            raise self._error("answered JSON without an errcode", transient=False)
        if errcode != 0:
            detail = f"errcode {errcode}: {answer.get('errmsg', '')}"
            raise self._error(detail, transient=errcode in RATE_LIMITED, errcode=errcode)

    def _error(self, detail: str, *, transient: bool, errcode: int | None = None) -> RobotError:
        message = f"{self._where}: {detail}"
        for hidden in self._hidden:
            message = message.replace(hidden, "***")
        return RobotError(message, transient=transient, errcode=errcode)


class DingTalkRobot(_Webhook):
    """DingTalk custom robot; signs every message (加签) when given the robot's secret."""

    name = "dingtalk"

    def __init__(
        self, url: str, secret: str | None, *, timeout: float = 5.0, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(url, timeout=timeout, secret=secret)
        self._secret, self._clock = secret, clock

    def send(self, text: str) -> None:
        url = self._url
        if self._secret:
            timestamp = int(self._clock() * 1000)
            # urlencode quotes the base64 sign's "+", "/" and "=" exactly once, as DingTalk expects.
            signed = urlencode({"timestamp": timestamp, "sign": dingtalk_sign(self._secret, timestamp)})
            url += ("" if url.endswith(("?", "&")) else "&" if "?" in url else "?") + signed
        self._post(url, {"msgtype": "markdown", "markdown": {"title": "Ledger alerts", "text": text}})


class WeComRobot(_Webhook):
    """WeCom (企业微信) group robot; the `key` in its URL is the only credential."""

    name = "wecom"

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        super().__init__(url, timeout=timeout)

    def send(self, text: str) -> None:
        content = truncate_utf8(text, WECOM_MARKDOWN_MAX_BYTES, "\n…")
        self._post(self._url, {"msgtype": "markdown", "markdown": {"content": content}})


class MemoryRobot:
    """The in-memory twin: keeps what it is sent, and fails on demand the way the real robots do."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[str] = []
        self._failures: list[bool] = []
        self._lock = threading.Lock()

    def fail_next(self, n: int = 1, transient: bool = True) -> None:
        with self._lock:
            self._failures.extend([transient] * n)

    def send(self, text: str) -> None:
        with self._lock:
            if self._failures:
                raise RobotError(f"{self.name} robot told to fail", transient=self._failures.pop(0))
            self.sent.append(text)
