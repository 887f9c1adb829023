"""A real `ledger serve` as the internet reaches it: clients that drip a request are cut off at its deadline
(408), connections beyond the cap are refused at once, genuine notifications still get through, and the
sender's address is taken from X-Forwarded-For only when the peer is a trusted proxy.

Every slow client here is a socket the test closes; each server stops with its test."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.alipay import SandboxAlipay
from tests.support.refs import ref
from tests.support.server import OPERATOR_TOKEN, LedgerServer

pytestmark = pytest.mark.slow

HEAD = b"POST /api/alipay/notify HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/x-www-form-urlencoded\r\n"
MARGIN = 1.5  # seconds the server may take beyond a deadline on a busy 2-core host


@pytest.fixture
def serve(tmp_path: Path, alipay: SandboxAlipay) -> Iterator[Callable[..., LedgerServer]]:
    """Factory: a ready `ledger serve` on the embedded default, with these LEDGER_* settings."""
    started: list[LedgerServer] = []

    def start(*, max_files: int | None = None, database_url: str | None = None, **env: str) -> LedgerServer:
        server = LedgerServer({**alipay.env(), "LEDGER_DATABASE_URL": database_url or f"sqlite:///{tmp_path}/l.db",
                               "LEDGER_API_TOKENS": f"operator:{OPERATOR_TOKEN}", **env},
                              tmp_path / f"server-{len(started)}.log", max_files=max_files)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


class SlowClient:
    """A raw connection that sends a request piece by piece, and notes when and how the server ends it."""

    def __init__(self, server: LedgerServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)

    def drip(self, first: bytes, piece: bytes, *, every: float = 0.2, most: float = 8.0) -> tuple[float, bytes]:
        """Send `first`, then `piece` every `every` s until the server closes the connection (at most `most` s):
        how long it took, and what the server answered."""
        started, answer = time.monotonic(), b""
        self.sock.settimeout(every)
        with contextlib.suppress(OSError):  # a reset is a close too
            self.sock.sendall(first)
            while time.monotonic() - started < most:
                self.sock.sendall(piece)
                try:
                    if not (received := self.sock.recv(4096)):
                        break
                    answer += received
                except TimeoutError:
                    continue
        return time.monotonic() - started, answer

    def answer(self, seconds: float) -> bytes:
        """What the server sends (until it closes, or `seconds` pass) without sending anything more."""
        self.sock.settimeout(seconds)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(4096):
                received += chunk
        return received

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def slow_clients(server: LedgerServer, count: int) -> Iterator[list[SlowClient]]:
    """`count` connections, each holding the first half of a request's head; all closed afterwards."""
    clients: list[SlowClient] = []
    try:
        for _ in range(count):
            clients.append(SlowClient(server))
            with contextlib.suppress(OSError):  # one beyond the cap may be closed already
                clients[-1].sock.sendall(HEAD)
        yield clients
    finally:
        for client in clients:
            client.close()


def rejected_senders(server: LedgerServer) -> list[str]:
    request = urllib.request.Request(server.url + "/api/rejected-callbacks",
                                     headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return [row["remote_addr"] for row in json.loads(response.read())["rejected"]]


# -- the read deadline ---------------------------------------------------------------------------------


def test_a_client_dripping_its_headers_is_answered_408_and_cut_off_at_the_read_deadline(
        serve: Callable[..., LedgerServer]) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="1")
    client = SlowClient(server)
    took, answer = client.drip(HEAD, b"X-Drip: 1\r\n")
    client.close()
    assert 0.9 <= took <= 1 + MARGIN
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_client_dripping_its_body_is_answered_408_at_the_read_deadline(serve: Callable[..., LedgerServer]) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="1")
    client = SlowClient(server)
    took, answer = client.drip(HEAD + b"Content-Length: 1000\r\n\r\n", b"a")
    client.close()
    assert 0.9 <= took <= 1 + MARGIN
    assert answer.startswith(b"HTTP/1.1 408 ") and b"not received within 1 s" in answer
    # The notify endpoint's read ended quietly. Stopped by SIGTERM, uvicorn finishes every request it began
    # and only then dies of the signal it caught (a kill after stop()'s wait would be SIGKILL): by then the
    # log holds whatever that request's end would have logged.
    server.stop()
    assert server.process.returncode == -signal.SIGTERM, server.log.read_text()
    assert "Traceback" not in server.log.read_text()


def test_the_deadline_is_for_the_whole_request_head_and_body_together(serve: Callable[..., LedgerServer]) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="2")
    client = SlowClient(server)
    started = time.monotonic()
    for line in (b"POST /api/alipay/notify HTTP/1.1\r\n", b"Host: ledger\r\n", b"Content-Length: 1000\r\n\r\n"):
        client.sock.sendall(line)
        time.sleep(0.4)  # the head takes 1.2 s of the 2
    took, answer = client.drip(b"", b"a")
    client.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 1.9 <= time.monotonic() - started <= 2 + MARGIN and took < 0.8 + MARGIN


def test_a_connection_that_sends_nothing_is_closed_at_the_read_deadline(serve: Callable[..., LedgerServer]) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="1")
    client = SlowClient(server)
    started = time.monotonic()
    assert client.answer(5) == b""
    client.close()
    assert 0.9 <= time.monotonic() - started <= 1 + MARGIN


def test_a_kept_alive_connection_dripping_its_next_request_is_cut_off_too(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="1")
    client = SlowClient(server)
    body = alipay.body(ref())
    client.sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    client.sock.settimeout(5)
    first = b""
    while not first.endswith(b"success"):  # the whole answer, however it is split
        first += client.sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200 ")
    took, answer = client.drip(HEAD, b"X-Drip: 1\r\n")
    client.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and 0.9 <= took <= 1 + MARGIN


def test_a_request_that_arrives_within_the_deadline_is_served_however_slowly(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="3")
    client = SlowClient(server)
    body = alipay.body(ref())
    for piece in (HEAD, b"Content-Length: %d\r\n\r\n" % len(body), body[:100], body[100:]):
        client.sock.sendall(piece)
        time.sleep(0.3)
    answer = client.answer(5)
    client.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"success")


# -- connections ---------------------------------------------------------------------------------------


def test_genuine_notifications_succeed_while_slow_clients_hold_connections(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="30", LEDGER_MAX_CONNECTIONS="60")
    with slow_clients(server, 50):
        answers = [server.notify(alipay.body(ref())) for _ in range(5)]
    assert answers == [(200, "success")] * 5


def test_connections_beyond_the_cap_are_refused_at_once_and_served_again_once_the_slow_ones_are_cut_off(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay) -> None:
    server = serve(LEDGER_REQUEST_READ_SECONDS="2", LEDGER_MAX_CONNECTIONS="20")
    with slow_clients(server, 20) as held:
        extra = SlowClient(server)
        started = time.monotonic()
        assert extra.answer(5).startswith(b"HTTP/1.1 503 ")
        assert time.monotonic() - started < 1
        extra.close()
        # The deadline frees the cap: the held clients see a 408 and hang up, and a genuine notification gets in.
        assert all(client.answer(2 + MARGIN).startswith(b"HTTP/1.1 408 ") for client in held)
        for client in held:
            client.close()
        assert server.notify(alipay.body(ref())) == (200, "success")


def test_with_few_file_descriptors_the_cap_is_lowered_and_slow_clients_beyond_it_do_not_break_accepting(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay) -> None:
    server = serve(max_files=256, LEDGER_REQUEST_READ_SECONDS="2")  # 1000 connections by default
    with slow_clients(server, 300) as held:
        assert sum(client.answer(0.5).startswith(b"HTTP/1.1 503 ") for client in held) >= 300 - 156
        time.sleep(2 + MARGIN)  # the rest are cut off at their deadline
        assert server.notify(alipay.body(ref())) == (200, "success")
    log = server.log.read_text()
    assert "may open only 256 files: at most 156 connections" in log
    assert "Too many open files" not in log and "out of system resource" not in log


# -- the sender's address ------------------------------------------------------------------------------


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay) -> None:
    forgery = alipay.body(ref()).replace(b"total_amount=88.00", b"total_amount=0.01")
    server = serve()
    assert server.notify(forgery, **{"X-Forwarded-For": "203.0.113.9"}) == (400, "fail")
    assert rejected_senders(server) == ["127.0.0.1"]


def test_behind_a_trusted_proxy_the_sender_is_its_client_and_always_a_valid_address(
        serve: Callable[..., LedgerServer], alipay: SandboxAlipay, postgres_url: str) -> None:
    forgery = alipay.body(ref()).replace(b"total_amount=88.00", b"total_amount=0.01")
    server = serve(database_url=postgres_url, LEDGER_TRUSTED_PROXIES="127.0.0.0/8")
    for forwarded in ("203.0.113.9", "198.51.100.1, 2001:db8::7", "x" * 100, "unknown"):
        assert server.notify(forgery, **{"X-Forwarded-For": forwarded}) == (400, "fail")
    # Newest first. An X-Forwarded-For over 64 characters once failed the PostgreSQL insert: no row at all.
    assert rejected_senders(server) == ["invalid", "invalid", "2001:db8::7", "203.0.113.9"]
