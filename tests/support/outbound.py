"""Misbehaving HTTP servers on 127.0.0.1 for the outbound client's tests, on raw sockets so every byte is chosen.

    with RawServer(answer(200, DELIVERED)) as elsewhere, RawServer(redirect(elsewhere.url)) as server:
        HttpClient(timeout=1).post(server.url, b"{}", {})
        server.requests     # request lines received, e.g. ["POST /hook?access_token=TESTTOKEN HTTP/1.1"]
        server.sent         # bytes of answer written; server.cut_off: the client hung up before the end
        server.idle(2.0)    # True once every reply has ended by itself

Replies, each given the connection and the server once the whole request has been read:
- `answer(status, body, headers)`: a whole answer at once;
- `redirect(location)`: a 302 to `location`, whose own body says delivered (errcode 0, ok true) too;
- `drip(every=0.2, body_only=False)`: a delivered answer, one byte every `every` seconds (from the body on,
  with `body_only`);
- `flood(total, declare_length=False, status=200)`: that status and a `total`-byte body (JSON saying
  delivered, then spaces) written as fast as the client takes it, with or without a Content-Length.
A reply stops when it is done, when the client hangs up, or at close(); a socket write waits at most 5 s.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Self

from tests.support.robots import TOKEN

Reply = Callable[[socket.socket, "RawServer"], None]
DELIVERED = b'{"errcode":0,"errmsg":"ok","ok":true}'  # what a robot or a merchant says when it took a message
_BLOCK = 64 * 1024


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def answer(status: int, body: bytes = DELIVERED, headers: dict[str, str] | None = None) -> Reply:
    whole = _head(status, {"Content-Type": "application/json", "Content-Length": str(len(body)),
                           **(headers or {})}) + body

    def reply(conn: socket.socket, server: RawServer) -> None:
        server.write(conn, whole)

    return reply


def redirect(location: str) -> Reply:
    return answer(302, DELIVERED, {"Location": location})


def drip(every: float = 0.2, *, body_only: bool = False) -> Reply:
    head = _head(200, {"Content-Type": "application/json", "Content-Length": str(len(DELIVERED))})

    def reply(conn: socket.socket, server: RawServer) -> None:
        if body_only and not server.write(conn, head):
            return
        for byte in DELIVERED if body_only else head + DELIVERED:
            if server.closing.wait(every) or not server.write(conn, bytes([byte])):
                return

    return reply


def flood(total: int, *, declare_length: bool = False, status: int = 200) -> Reply:
    length = {"Content-Length": str(total)} if declare_length else {"Connection": "close"}
    head = _head(status, {"Content-Type": "application/json", **length})
    spaces = b" " * _BLOCK

    def reply(conn: socket.socket, server: RawServer) -> None:
        if not server.write(conn, head + DELIVERED):
            return
        left = total - len(DELIVERED)
        while left > 0 and not server.closing.is_set() and server.write(conn, spaces[:left]):
            left -= _BLOCK

    return reply


class RawServer:
    """Answers every connection with `reply`; `url` is http://127.0.0.1:PORT/hook?access_token=TESTTOKEN.

    With `tls` (a server-side context, see tests.support.tls) it speaks https, and `url` says so.
    """

    def __init__(self, reply: Reply, *, tls: ssl.SSLContext | None = None) -> None:
        self._reply, self._tls = reply, tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}/hook?access_token={TOKEN}"
        self.requests: list[str] = []
        self.sent = 0
        self.cut_off = False
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> Self:
        self._acceptor.start()
        return self

    def close(self) -> None:
        self.closing.set()
        if self._acceptor.is_alive():
            self._acceptor.join()
        with self._lock:
            for conn in self._open:  # wakes a reply blocked writing to a client that stopped reading
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()
        self._listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def idle(self, timeout: float) -> bool:
        """Wait until every reply has ended by itself (done, or its client gone); False if one still runs."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def write(self, conn: socket.socket, data: bytes) -> bool:
        """Send `data`; False (and `cut_off` set) when the client is gone."""
        try:
            conn.sendall(data)
        except OSError:
            self.cut_off = True
            return False
        with self._lock:
            self.sent += len(data)
        return True

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5.0)
            with self._lock:
                self._open.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                with self._lock:
                    self._open.discard(conn)
                    conn = self._tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                    self._open.add(conn)
                conn.do_handshake()  # at most the socket's 5 s
            if (line := self._read_request(conn)) is not None:
                with self._lock:
                    self.requests.append(line)
                self._reply(conn, self)
        except OSError:
            pass  # the client hung up, stalled or refused the certificate: what several of these tests are about
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    @staticmethod
    def _read_request(conn: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            if not (chunk := conn.recv(_BLOCK)):
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"),
                      0)
        while len(body) < length and (chunk := conn.recv(_BLOCK)):
            body += chunk
        return lines[0]
