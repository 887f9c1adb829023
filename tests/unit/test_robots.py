"""Chat robots' pure parts: DingTalk's signature, URLs refused when a robot is made, the grouped alert message
and its truncation, and the in-memory twin (the real robots against local fakes are in
tests/integration/test_robot_clients.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.adapters.outbound.compose import truncate_utf8
from ledger.adapters.outbound.robots import MemoryRobot, Robot, WeComRobot, compose, dingtalk_sign
from tests.support.robot_contract import RobotContract
from tests.support.robots import KEY, ROBOT_SECRET


def test_dingtalk_sign_matches_the_reference_vector() -> None:
    assert dingtalk_sign(ROBOT_SECRET, 1700000000000) == "yBKp5IlG6qCzcQWmgyRK/ziJBdVNJmHfFE2ST/CzT/g="


@pytest.mark.parametrize("url", ["file:///etc/passwd", "robot.example/send?key=TESTKEY"])
def test_url_that_is_not_http_is_refused_when_the_robot_is_made(url: str) -> None:
    with pytest.raises(ValueError, match="http or https") as caught:
        WeComRobot(url)
    assert KEY not in str(caught.value)


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


class TestMemoryRobot(RobotContract):
    @pytest.fixture
    def twin(self) -> Iterator[tuple[Robot, Callable[[], list[str]], Callable[[int, bool], None]]]:
        robot = MemoryRobot()
        yield robot, lambda: robot.sent, robot.fail_next
