"""The DingTalk and WeCom robots against local fakes that check what the real ones check, and against raw
servers that redirect, flood or drip their answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from ledger.adapters.outbound.robots import DingTalkRobot, Robot, WeComRobot
from tests.support.outbound import RawServer, answer, drip, flood, redirect
from tests.support.robot_contract import WRONG_SECRET, RobotContract, refused
from tests.support.robots import ROBOT_SECRET, TOKEN, FakeDingTalk, FakeWeCom


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/robot/send?access_token={TOKEN}"


@dataclass
class Endpoint:
    """A fake robot server and a way to make the matching client robot, with a chosen URL or timeout."""

    fake: FakeDingTalk | FakeWeCom
    make: Callable[..., Robot]


@pytest.fixture(params=["dingtalk", "wecom"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    if request.param == "dingtalk":
        with FakeDingTalk(ROBOT_SECRET) as dingtalk:
            yield Endpoint(dingtalk, lambda url=dingtalk.url, **kw: DingTalkRobot(url, ROBOT_SECRET, **kw))
    else:
        with FakeWeCom() as wecom:
            yield Endpoint(wecom, lambda url=wecom.url, **kw: WeComRobot(url, **kw))


def test_signed_markdown_message_is_accepted_by_dingtalk() -> None:
    with FakeDingTalk(ROBOT_SECRET) as dingtalk:
        DingTalkRobot(dingtalk.url, ROBOT_SECRET).send("**payment** late")
    assert [m["body"] for m in dingtalk.messages] == [
        {"msgtype": "markdown", "markdown": {"title": "Ledger alerts", "text": "**payment** late"}}
    ]


def test_sign_with_slash_and_equals_is_url_encoded_exactly_once() -> None:
    # The vector's sign holds "/" and "=": sent raw or encoded twice, the fake's one decoding would not match it.
    frozen = 1700000000.0
    with FakeDingTalk(ROBOT_SECRET, clock=lambda: frozen) as dingtalk:
        DingTalkRobot(dingtalk.url, ROBOT_SECRET, clock=lambda: frozen).send("at the vector's time")
    assert dingtalk.texts == ["at the vector's time"]


def test_wrong_secret_is_a_permanent_error() -> None:
    with FakeDingTalk(ROBOT_SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, WRONG_SECRET))
    assert (error.transient, error.errcode) == (False, 310000)
    assert dingtalk.messages == []


def test_unsigned_message_to_a_robot_that_requires_signing_is_a_permanent_error() -> None:
    with FakeDingTalk(ROBOT_SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, None))
    assert (error.transient, error.errcode) == (False, 310000)


def test_timestamp_more_than_an_hour_off_is_refused() -> None:
    with FakeDingTalk(ROBOT_SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, ROBOT_SECRET, clock=lambda: time.time() - 7200))
    assert (error.transient, error.errcode) == (False, 310000)


def test_missing_access_token_is_a_permanent_error() -> None:
    with FakeDingTalk(None) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url.partition("?")[0], None))
    assert (error.transient, error.errcode) == (False, 300001)


@pytest.mark.parametrize("errcode", [130101, 45009])
def test_twenty_first_message_in_a_minute_is_throttled_transiently(errcode: int) -> None:
    fake = FakeDingTalk(ROBOT_SECRET) if errcode == 130101 else FakeWeCom()
    with fake:
        robot = DingTalkRobot(fake.url, ROBOT_SECRET) if errcode == 130101 else WeComRobot(fake.url)
        for n in range(20):
            robot.send(f"alert {n}")
        error = refused(robot, "alert 20")
    assert (error.transient, error.errcode) == (True, errcode)
    assert (len(fake.messages), fake.throttled) == (20, 1)


def test_rate_window_rolls_so_a_minute_later_messages_pass_again() -> None:
    now = [1700000000.0]
    with FakeDingTalk(None, clock=lambda: now[0]) as dingtalk:
        robot = DingTalkRobot(dingtalk.url, None)
        for _ in range(20):
            robot.send("burst")
        assert refused(robot).transient
        now[0] += 61
        robot.send("later")
    assert dingtalk.texts[-1] == "later"


def test_server_error_is_transient(endpoint: Endpoint) -> None:
    endpoint.fake.fail_next(1, status=500)
    assert refused(endpoint.make()).transient
    endpoint.make().send("after the outage")
    assert endpoint.fake.texts == ["after the outage"]


def test_wrong_path_is_a_permanent_error(endpoint: Endpoint) -> None:
    url = endpoint.fake.url.replace("/send?", "/sned?")
    assert not refused(endpoint.make(url)).transient


def test_connection_refused_is_transient(endpoint: Endpoint) -> None:
    assert refused(endpoint.make(closed_port_url())).transient


def test_timeout_is_transient(endpoint: Endpoint) -> None:
    endpoint.fake.stall_next(5.0)
    started = time.monotonic()
    assert refused(endpoint.make(timeout=0.3)).transient
    assert time.monotonic() - started < 3


def test_a_redirect_to_a_server_that_says_errcode_0_is_not_delivered(endpoint: Endpoint) -> None:
    with RawServer(answer(200)) as elsewhere, RawServer(redirect(elsewhere.url)) as redirecting:
        error = refused(endpoint.make(redirecting.url))
    assert not error.transient
    assert "HTTP 302 (a redirect, not followed)" in str(error)
    assert elsewhere.requests == []


def test_an_answer_over_the_size_cap_is_refused_without_reading_it_all(endpoint: Endpoint) -> None:
    with RawServer(flood(64 * 1024 * 1024)) as flooding:  # JSON saying errcode 0, then 64 MiB of spaces
        error = refused(endpoint.make(flooding.url))
        assert flooding.idle(2)
    assert not error.transient
    assert "answer larger than 65536 bytes" in str(error)
    assert flooding.cut_off


def test_a_robot_dripping_its_answer_cannot_hold_a_send_past_the_timeout(endpoint: Endpoint) -> None:
    with RawServer(drip(0.2)) as dripping:  # one byte every 0.2 s of an errcode 0 answer
        started = time.monotonic()
        error = refused(endpoint.make(dripping.url, timeout=1.0))
        elapsed = time.monotonic() - started
    assert error.transient and "timeout after 1.0 s" in str(error)
    assert elapsed < 2


def test_answer_that_is_not_json_is_permanent(endpoint: Endpoint) -> None:
    endpoint.fake.fail_next(1, status=200, body=b"<html>502 Bad Gateway</html>")
    error = refused(endpoint.make())
    assert not error.transient
    assert "not JSON" in str(error)


def test_robot_shows_only_scheme_host_and_path() -> None:
    with FakeDingTalk(ROBOT_SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, WRONG_SECRET))
    assert f"dingtalk robot at {dingtalk.url.partition('?')[0]}: errcode 310000" in str(error)
    assert "access_token" not in str(error)


def test_closed_fake_keeps_its_url_and_looks_down() -> None:
    with FakeWeCom() as wecom:
        pass
    assert refused(WeComRobot(wecom.url)).transient


def test_wecom_truncates_chinese_markdown_to_4096_bytes_without_splitting_a_character() -> None:
    text = "支付宝通知延迟" * 700  # 21 bytes a repeat, 14,700 bytes in all
    with FakeWeCom() as wecom:
        WeComRobot(wecom.url).send(text)
    [content] = wecom.texts
    assert len(content.encode()) <= 4096
    assert text.startswith(content.removesuffix("\n…"))
    assert len(content.encode()) > 4096 - 8


class TestDingTalkRobot(RobotContract):
    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        def fail_next(n: int, transient: bool) -> None:
            if transient:
                dingtalk.fail_next(n, status=503)
            else:
                dingtalk.fail_next(n, status=200, body=b'{"errcode":310000,"errmsg":"keywords not in content"}')

        with FakeDingTalk(ROBOT_SECRET) as dingtalk:
            yield DingTalkRobot(dingtalk.url, ROBOT_SECRET), lambda: dingtalk.texts, fail_next


class TestWeComRobot(RobotContract):
    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        def fail_next(n: int, transient: bool) -> None:
            wecom.fail_next(n, status=502 if transient else 404)

        with FakeWeCom() as wecom:
            yield WeComRobot(wecom.url), lambda: wecom.texts, fail_next
