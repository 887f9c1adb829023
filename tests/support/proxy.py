"""A TCP proxy a test can cut and restore, to make a server look down without stopping the shared one."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, like a crashed server


def _abort(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        # shutdown, not close, from this thread: it wakes the pump blocked in recv() on the same socket.
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Pair:
    """One client connection and its upstream twin, pumped by two threads; the last one out closes both."""

    def __init__(
        self, client: socket.socket, upstream: socket.socket, on_done: Callable[[_Pair], None]
    ) -> None:
        self._sockets = (client, upstream)
        self._on_done = on_done
        self._guard = threading.Lock()
        self._running = 2
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def abort(self) -> None:
        for sock in self._sockets:
            _abort(sock)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)  # pass the end of stream on, as the real server would see it
        except OSError:
            _abort(target)
        with self._guard:
            self._running -= 1
            last = self._running == 0
        if last:
            for sock in self._sockets:
                sock.close()
            self._on_done(self)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to (host, upstream_port) until `cut()`; `restore()` lets clients in again."""

    def __init__(self, host: str, upstream_port: int) -> None:
        self._upstream = (host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # lets the accept loop notice close()
        self.port: int = self._listener.getsockname()[1]
        self._guard = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._cut = False
        self._closed = threading.Event()
        self._acceptor = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"tcp-proxy-{self.port}"
        )
        self._acceptor.start()

    def url_through(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's, keeping user, path and query."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        return parts._replace(
            netloc=f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        ).geturl()

    def cut(self) -> None:
        """Reset every open connection; new ones are accepted and reset at once until `restore()`."""
        with self._guard:
            self._cut = True
            pairs = list(self._pairs)
        for pair in pairs:
            pair.abort()

    def restore(self) -> None:
        with self._guard:
            self._cut = False

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        self.cut()
        with self._guard:
            threads = [thread for pair in self._pairs for thread in pair.threads]
        for thread in threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = None if self._cut else socket.create_connection(self._upstream, timeout=5)
            except OSError:
                upstream = None
            if upstream is None:
                _abort(client)
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream, self._forget)
            with self._guard:
                admitted = not self._cut
                if admitted:
                    self._pairs.add(pair)
            if not admitted:  # cut() ran while we were connecting upstream
                pair.abort()
            pair.start()

    def _forget(self, pair: _Pair) -> None:
        with self._guard:
            self._pairs.discard(pair)
