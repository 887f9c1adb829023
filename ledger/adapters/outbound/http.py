"""The ledger's one outbound HTTP client, used for the merchant's webhook and the chat robots.

A POST gets one `Answer` or one `OutboundError`: a redirect is an answer, never followed; a 2xx body is read up
to a cap; one deadline bounds the whole attempt (connect, TLS, send, headers, body), however slowly a server
drips its bytes. Proxies come from `http_proxy` / `https_proxy` / `no_proxy`, as they did for urllib.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import math
import socket
import ssl
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

MAX_ANSWER_BYTES = 64 * 1024


class OutboundError(Exception):
    """No usable answer. The text names the cause and never the URL, whose query may carry a token."""

    def __init__(self, reason: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(reason)
        self.retryable, self.status = retryable, status


@dataclass(frozen=True)
class Answer:
    """A whole answer: its status and, for a 2xx, its body of at most the client's cap (else b"", unread)."""

    status: int
    body: bytes
    date: str = ""  # the server's Date header, as sent

    @property
    def failure(self) -> str:
        """Empty for a 2xx; otherwise what to say about the status."""
        if 200 <= self.status < 300:
            return ""
        if 300 <= self.status < 400:
            return f"HTTP {self.status} (a redirect, not followed)"
        return f"HTTP {self.status}"


@dataclass(frozen=True)
class HttpClient:
    """POSTs bytes; `timeout` is seconds for the whole attempt, `max_answer_bytes` the largest body taken.

    `tls` is the context for https; by default the system's CAs, verifying host names, as urllib did.
    """

    timeout: float
    max_answer_bytes: int = MAX_ANSWER_BYTES
    tls: ssl.SSLContext | None = None
    every_body: bool = False  # read the body of any status, not only a 2xx's (up to the same cap)

    def __post_init__(self) -> None:
        if not (0 < self.timeout < math.inf):  # "not (ok)": NaN is refused too
            raise ValueError("timeout must be finite and > 0")
        if self.max_answer_bytes < 0:
            raise ValueError("max_answer_bytes must be >= 0")

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        return self._call("POST", url, body, headers)

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        """A GET (a file to download, such as a bill from the URL the gateway gave), with the same guarantees."""
        return self._call("GET", url, None, headers or {})

    def _call(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        deadline = _Deadline(time.monotonic() + self.timeout)
        connection: http.client.HTTPConnection | None = None
        try:
            connection, target, extra = _connection(_parse(url), deadline, self.tls)
            connection.request(method, target, body,
                               {"User-Agent": "alipay-ledger", **headers, **extra, "Connection": "close"})
            with connection.getresponse() as response:
                # Any other status says it all: a gateway's large or slow error page must not turn it into another.
                wanted = self.every_body or 200 <= response.status < 300
                return Answer(response.status, self._read(response) if wanted else b"",
                              response.getheader("Date", ""))
        except TimeoutError:
            raise OutboundError(f"timeout after {float(self.timeout)} s") from None
        except ConnectionRefusedError:
            raise OutboundError("connection refused") from None
        except ConnectionResetError:  # http.client.RemoteDisconnected is one
            raise OutboundError("connection reset") from None
        except ssl.SSLError as exc:  # before ValueError: a certificate refused is one
            raise OutboundError(f"TLS failed: {exc.reason or type(exc).__name__}") from None
        except (ValueError, http.client.InvalidURL):  # their text would show the URL, and with it the token
            raise OutboundError("invalid URL or header", retryable=False) from None
        except http.client.HTTPException as exc:
            raise OutboundError(f"bad HTTP answer ({type(exc).__name__})") from None
        except OSError as exc:  # name not found, host unreachable, a proxy's refusal: their text names no URL
            raise OutboundError(f"connection failed: {str(exc)[:120]}") from None
        finally:
            if connection is not None:
                connection.close()

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        cap, status = self.max_answer_bytes, response.status
        too_large = OutboundError(f"HTTP {status} answer larger than {cap} bytes", retryable=False, status=status)
        if response.length is not None and response.length > cap:
            raise too_large  # said so in Content-Length: not one byte of it is read
        body = bytearray()
        while len(body) <= cap and (piece := response.read(cap + 1 - len(body))):
            body += piece
        if len(body) > cap:
            raise too_large
        if response.length:  # the server hung up before the Content-Length it announced
            raise http.client.IncompleteRead(bytes(body), response.length)
        return bytes(body)


def _parse(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port out of range or not a number
    except ValueError:
        raise OutboundError("invalid URL", retryable=False) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError("invalid URL (need http:// or https:// and a host)", retryable=False)
    if parts.username is not None:
        raise OutboundError("invalid URL (user:password@ is not supported)", retryable=False)
    return parts


def _connection(
    parts: SplitResult, deadline: _Deadline, context: ssl.SSLContext | None
) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """The connection for `parts`, the request target to send on it, and the headers a proxy needs."""
    host, tls = str(parts.hostname), (context or _tls()) if parts.scheme == "https" else None
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    found = urllib.request.getproxies().get(parts.scheme)
    if not found or urllib.request.proxy_bypass(host):
        return _Connection(host, port, deadline, tls), target, {}
    proxy = urlsplit(found if "://" in found else f"http://{found}")
    auth = {}
    if proxy.username is not None:
        secret = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
        auth["Proxy-Authorization"] = f"Basic {base64.b64encode(secret).decode()}"
    connection = _Connection(str(proxy.hostname), proxy.port or 80, deadline, tls, tls_host=host)
    if tls:  # through a CONNECT tunnel, then TLS with the robot or merchant itself
        connection.set_tunnel(host, port, headers=auth)
        return connection, target, {}
    return connection, urlunsplit(parts._replace(fragment="")), auth


@functools.cache
def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass(frozen=True)
class _Deadline:
    at: float

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt's deadline has passed")
        return left


class _Connection(http.client.HTTPConnection):
    """http.client's connection, each step given only the time left before the attempt's deadline."""

    def __init__(
        self, host: str, port: int, deadline: _Deadline, tls: ssl.SSLContext | None, tls_host: str | None = None
    ) -> None:
        super().__init__(host, port)
        self._deadline, self._tls, self._tls_host = deadline, tls, tls_host or host
        self.response_class = _paced_response(deadline)
        if tls is not None:
            self.default_port = 443  # so the Host header says "example.com", not "example.com:443"

    def connect(self) -> None:
        self.timeout = self._deadline.left()
        super().connect()  # TCP, and a proxy's CONNECT tunnel
        if self._tls is not None:
            self.sock.settimeout(self._deadline.left())  # ssl bounds the whole handshake by it
            self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._tls_host)

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        self.sock.settimeout(self._deadline.left())  # sendall: the timeout bounds the whole call
        super().send(data)


def _paced_response(deadline: _Deadline) -> type[http.client.HTTPResponse]:
    class PacedResponse(http.client.HTTPResponse):
        """Reads the status line, headers and body with each read given only the time left."""

        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            self.fp = io.BufferedReader(_PacedReader(sock, self.fp.detach(), deadline))

    return PacedResponse


class _PacedReader(io.RawIOBase):
    """The socket's reader with the socket timeout set, before each read, to the time left."""

    def __init__(self, sock: socket.socket, raw: io.RawIOBase, deadline: _Deadline) -> None:
        super().__init__()
        self._sock, self._raw, self._deadline = sock, raw, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.left())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
