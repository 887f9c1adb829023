"""What every chat robot, real or in-memory twin, promises; run against each by subclasses (the twin in
tests/unit, DingTalk and WeCom against their local fakes in tests/integration)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.adapters.outbound.robots import Robot, RobotError
from tests.support.robots import KEY, ROBOT_SECRET, TOKEN

WRONG_SECRET = "SECwrong9876543210"
CREDENTIALS = (ROBOT_SECRET, WRONG_SECRET, TOKEN, KEY)


def assert_discreet(error: RobotError) -> None:
    for shown in (str(error), repr(error), *map(str, error.args)):
        for credential in CREDENTIALS:
            assert credential not in shown


def refused(robot: Robot, text: str = "hello") -> RobotError:
    """The error `robot.send(text)` raised, having checked it shows no secret, token or key."""
    with pytest.raises(RobotError) as caught:
        robot.send(text)
    assert_discreet(caught.value)
    return caught.value


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

    def test_permanent_failure_delivers_nothing_and_says_it_is_permanent(self, twin: Any) -> None:
        robot, delivered, fail_next = twin
        fail_next(1, False)
        assert not refused(robot).transient
        assert delivered() == []
