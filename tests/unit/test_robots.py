"""Chat robots against local fakes that check what DingTalk and WeCom check, and the grouped alert message."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.adapters.outbound.compose import truncate_utf8
from ledger.adapters.outbound.robots import (
    DingTalkRobot,
    MemoryRobot,
    Robot,
    RobotError,
    WeComRobot,
    compose,
    dingtalk_sign,
)
from tests.support.outbound import RawServer, answer, drip, flood, redirect
from tests.support.robots import KEY, TOKEN, FakeDingTalk, FakeWeCom

SECRET = "SECtest0123456789"
WRONG_SECRET = "SECwrong9876543210"
CREDENTIALS = (SECRET, WRONG_SECRET, TOKEN, KEY)


def assert_discreet(error: RobotError) -> None:
    for shown in (str(error), repr(error), *map(str, error.args)):
        for credential in CREDENTIALS:
            assert credential not in shown


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
        with FakeDingTalk(SECRET) as dingtalk:
            yield Endpoint(dingtalk, lambda url=dingtalk.url, **kw: DingTalkRobot(url, SECRET, **kw))
    else:
        with FakeWeCom() as wecom:
            yield Endpoint(wecom, lambda url=wecom.url, **kw: WeComRobot(url, **kw))


def refused(robot: Robot, text: str = "hello") -> RobotError:
    with pytest.raises(RobotError) as caught:
        robot.send(text)
    assert_discreet(caught.value)
    return caught.value


def test_dingtalk_sign_matches_the_reference_vector() -> None:
    assert dingtalk_sign(SECRET, 1700000000000) == "yBKp5IlG6qCzcQWmgyRK/ziJBdVNJmHfFE2ST/CzT/g="


def test_signed_markdown_message_is_accepted_by_dingtalk() -> None:
    with FakeDingTalk(SECRET) as dingtalk:
        DingTalkRobot(dingtalk.url, SECRET).send("**payment** late")
    assert [m["body"] for m in dingtalk.messages] == [
        {"msgtype": "markdown", "markdown": {"title": "Ledger alerts", "text": "**payment** late"}}
    ]


def test_sign_with_slash_and_equals_is_url_encoded_exactly_once() -> None:
    # The vector's sign holds "/" and "=": sent raw or encoded twice, the fake's one decoding would not match it.
    frozen = 1700000000.0
    with FakeDingTalk(SECRET, clock=lambda: frozen) as dingtalk:
        DingTalkRobot(dingtalk.url, SECRET, clock=lambda: frozen).send("at the vector's time")
    assert dingtalk.texts == ["at the vector's time"]


def test_wrong_secret_is_a_permanent_error() -> None:
    with FakeDingTalk(SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, WRONG_SECRET))
    assert (error.transient, error.errcode) == (False, 310000)
    assert dingtalk.messages == []


def test_unsigned_message_to_a_robot_that_requires_signing_is_a_permanent_error() -> None:
    with FakeDingTalk(SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, None))
    assert (error.transient, error.errcode) == (False, 310000)


def test_timestamp_more_than_an_hour_off_is_refused() -> None:
    with FakeDingTalk(SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, SECRET, clock=lambda: time.time() - 7200))
    assert (error.transient, error.errcode) == (False, 310000)


def test_missing_access_token_is_a_permanent_error() -> None:
    with FakeDingTalk(None) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url.partition("?")[0], None))
    assert (error.transient, error.errcode) == (False, 300001)


@pytest.mark.parametrize("errcode", [130101, 45009])
def test_twenty_first_message_in_a_minute_is_throttled_transiently(errcode: int) -> None:
    fake = FakeDingTalk(SECRET) if errcode == 130101 else FakeWeCom()
    with fake:
        robot = DingTalkRobot(fake.url, SECRET) if errcode == 130101 else WeComRobot(fake.url)
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
    with FakeDingTalk(SECRET) as dingtalk:
        error = refused(DingTalkRobot(dingtalk.url, WRONG_SECRET))
    assert f"dingtalk robot at {dingtalk.url.partition('?')[0]}: errcode 310000" in str(error)
    assert "access_token" not in str(error)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "robot.example/send?key=TESTKEY"])
def test_url_that_is_not_http_is_refused_when_the_robot_is_made(url: str) -> None:
    with pytest.raises(ValueError, match="http or https") as caught:
        WeComRobot(url)
    assert KEY not in str(caught.value)


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


@pytest.mark.parametrize("limit", range(12))
def test_truncate_utf8_never_splits_a_character(limit: int) -> None:
    cut = truncate_utf8("支付a宝", limit)
    assert len(cut.encode()) <= limit
    assert "支付a宝".startswith(cut)


def alerts(count: int) -> list[dict[str, Any]]:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    kinds = ["delivery_abandoned", "lock_timeout", "signature_invalid"]
    return [
        {
            "kind": kinds[n % 3],
            "key": f"order-{n}",
            "message": f"order {n:03d} needs attention: downstream answered 503 five times",
            "raised_at": start + timedelta(seconds=n),
        }
        for n in range(count)
    ]


def test_hundred_alerts_become_one_message_under_the_limit() -> None:
    text = compose(alerts(100))
    lines = text.splitlines()
    shown = [line for line in lines if line.startswith("- [")]
    assert len(text.encode()) <= 3500
    assert "100" in lines[0]
    assert {"- delivery_abandoned: 34", "- lock_timeout: 33", "- signature_invalid: 33"} <= set(lines)
    assert 0 < len(shown) < 100
    assert lines[-1] == f"... and {100 - len(shown)} more"
    assert shown[0].startswith("- [delivery_abandoned] order 099")  # newest first
    assert shown[1].startswith("- [signature_invalid] order 098")


def test_few_alerts_are_all_listed() -> None:
    text = compose(alerts(3))
    assert "more" not in text
    shown = [line.split(":")[0] for line in text.splitlines() if line.startswith("- [")]
    assert shown == [
        "- [signature_invalid] order 002 needs attention",
        "- [lock_timeout] order 001 needs attention",
        "- [delivery_abandoned] order 000 needs attention",
    ]


@pytest.mark.parametrize("limit", [40, 200, 1000])
def test_composed_message_never_exceeds_the_limit(limit: int) -> None:
    huge = [{**alerts(1)[0], "message": "卡" * 5000}, *alerts(30)]
    assert len(compose(huge, limit_bytes=limit).encode()) <= limit


class RobotContract:
    """What every robot, real or twin, promises: run against each by the subclasses below."""

    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        """(robot, the texts it delivered, make the next n sends fail, transiently or not)."""
        raise NotImplementedError

    def test_sent_text_is_delivered(self, twin: Any) -> None:
        robot, delivered, _ = twin
        robot.send("one")
        robot.send("two")
        assert delivered() == ["one", "two"]

    def test_transient_failure_delivers_nothing_and_the_next_send_works(self, twin: Any) -> None:
        robot, delivered, fail_next = twin
        fail_next(1, True)
        assert refused(robot, "lost").transient
        robot.send("kept")
        assert delivered() == ["kept"]

    def test_permanent_failure_says_so(self, twin: Any) -> None:
        robot, delivered, fail_next = twin
        fail_next(1, False)
        assert not refused(robot).transient
        assert delivered() == []


class TestMemoryRobot(RobotContract):
    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        robot = MemoryRobot()
        yield robot, lambda: robot.sent, robot.fail_next


class TestDingTalkRobot(RobotContract):
    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        def fail_next(n: int, transient: bool) -> None:
            if transient:
                dingtalk.fail_next(n, status=503)
            else:
                dingtalk.fail_next(n, status=200, body=b'{"errcode":310000,"errmsg":"keywords not in content"}')

        with FakeDingTalk(SECRET) as dingtalk:
            yield DingTalkRobot(dingtalk.url, SECRET), lambda: dingtalk.texts, fail_next


class TestWeComRobot(RobotContract):
    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        def fail_next(n: int, transient: bool) -> None:
            wecom.fail_next(n, status=502 if transient else 404)

        with FakeWeCom() as wecom:
            yield WeComRobot(wecom.url), lambda: wecom.texts, fail_next
