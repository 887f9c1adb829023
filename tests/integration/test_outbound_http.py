"""The outbound HTTP client against real local servers that redirect, flood, drip and hang up."""

from __future__ import annotations

import socket
import time

import pytest

from ledger.adapters.outbound.http import MAX_ANSWER_BYTES, Answer, HttpClient, OutboundError
from tests.support.outbound import DELIVERED, RawServer, answer, drip, flood, redirect
from tests.support.robots import TOKEN
from tests.support.tls import tls_pair

FLOOD = 64 * 1024 * 1024  # far beyond the cap and the kernel's socket buffers


def failure(client: HttpClient, url: str) -> OutboundError:
    with pytest.raises(OutboundError) as caught:
        client.post(url, b"{}", {"Content-Type": "application/json"})
    assert TOKEN not in str(caught.value)
    return caught.value


def test_a_2xx_answer_is_its_status_and_whole_body() -> None:
    with RawServer(answer(201)) as server:
        got = HttpClient(timeout=2).post(server.url, b'{"a":1}', {"Content-Type": "application/json"})
    assert got == Answer(201, DELIVERED) and got.failure == ""
    assert server.requests == [f"POST /hook?access_token={TOKEN} HTTP/1.1"]


def test_a_redirect_is_an_answer_not_followed() -> None:
    with RawServer(answer(200)) as elsewhere, RawServer(redirect(elsewhere.url)) as server:
        got = HttpClient(timeout=2).post(server.url, b"{}", {})
    assert (got.status, got.failure) == (302, "HTTP 302 (a redirect, not followed)")
    assert elsewhere.requests == []


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "until-close"])
def test_an_answer_larger_than_the_cap_is_refused_without_reading_it_all(declare_length: bool) -> None:
    with RawServer(flood(FLOOD, declare_length=declare_length)) as server:
        started = time.monotonic()
        error = failure(HttpClient(timeout=10), server.url)
        assert time.monotonic() - started < 2
        assert server.idle(2), "the server's reply should end once the client hangs up"
    assert (str(error), error.retryable, error.status) == (
        f"HTTP 200 answer larger than {MAX_ANSWER_BYTES} bytes", False, 200)
    assert server.cut_off and server.sent < FLOOD


def test_an_error_status_is_answered_by_itself_without_reading_its_body() -> None:
    with RawServer(flood(FLOOD, status=503)) as server:  # a gateway's endless error page
        got = HttpClient(timeout=10).post(server.url, b"{}", {})
        assert server.idle(2)
    assert (got, got.failure) == (Answer(503, b""), "HTTP 503")
    assert server.sent < FLOOD


def test_an_answer_of_exactly_the_cap_is_taken_and_one_byte_more_is_not() -> None:
    with RawServer(answer(200)) as server:
        assert HttpClient(timeout=2, max_answer_bytes=len(DELIVERED)).post(server.url, b"", {}).body == DELIVERED
        error = failure(HttpClient(timeout=2, max_answer_bytes=len(DELIVERED) - 1), server.url)
    assert "larger than" in str(error)


@pytest.mark.parametrize("body_only", [False, True], ids=["headers", "body"])
def test_a_server_dripping_its_answer_cannot_hold_an_attempt_past_the_timeout(body_only: bool) -> None:
    # A byte every 0.2 s: a timeout per socket read (urllib's) would wait ~20 s for the whole answer.
    with RawServer(drip(0.2, body_only=body_only)) as server:
        started = time.monotonic()
        error = failure(HttpClient(timeout=1.0), server.url)
        elapsed = time.monotonic() - started
    assert (str(error), error.retryable) == ("timeout after 1.0 s", True)
    assert 0.9 < elapsed < 2


def test_a_server_that_hangs_up_before_its_content_length_is_a_bad_answer() -> None:
    with RawServer(answer(200, DELIVERED, {"Content-Length": "500"})) as server:
        assert str(failure(HttpClient(timeout=2), server.url)) == "bad HTTP answer (IncompleteRead)"


def test_a_closed_port_is_connection_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    error = failure(HttpClient(timeout=2), f"http://127.0.0.1:{port}/hook?access_token={TOKEN}")
    assert (str(error), error.retryable) == ("connection refused", True)


@pytest.mark.parametrize("url", [
    "not a url", "file:///etc/passwd", "ftp://example.com/x", "http://", "http://h:99999/", "http://u:p@h/",
    f"http://127.0.0.1:1/hook?access_token={TOKEN}\r\nX-Evil: 1", f"http://127.0.0.1:1/hook?access_token={TOKEN} x",
])
def test_an_invalid_url_is_refused_without_showing_it(url: str) -> None:
    error = failure(HttpClient(timeout=2), url)
    assert str(error).startswith("invalid URL") and not error.retryable


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    with RawServer(answer(200)) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url.partition("/hook")[0])
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        HttpClient(timeout=2).post("http://robot.invalid/send?key=K", b"", {})
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        HttpClient(timeout=2).post(proxy.url, b"", {})
    assert proxy.requests == ["POST http://robot.invalid/send?key=K HTTP/1.1",
                              f"POST /hook?access_token={TOKEN} HTTP/1.1"]


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_a_timeout_that_bounds_nothing_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError):
        HttpClient(timeout=timeout)


def test_https_checks_the_certificate_against_the_trusted_authorities() -> None:
    server_side, trusting = tls_pair()
    with RawServer(answer(200), tls=server_side) as server:
        assert HttpClient(timeout=2, tls=trusting).post(server.url, b"{}", {}) == Answer(200, DELIVERED)
        untrusted = failure(HttpClient(timeout=2), server.url)  # the system's CAs never signed the test CA
    assert (str(untrusted), untrusted.retryable) == ("TLS failed: CERTIFICATE_VERIFY_FAILED", True)


def test_a_server_dripping_over_https_cannot_hold_an_attempt_past_the_timeout_either() -> None:
    server_side, trusting = tls_pair()
    with RawServer(drip(0.2), tls=server_side) as server:
        started = time.monotonic()
        error = failure(HttpClient(timeout=1.0, tls=trusting), server.url)
        elapsed = time.monotonic() - started
    assert str(error) == "timeout after 1.0 s" and elapsed < 2
