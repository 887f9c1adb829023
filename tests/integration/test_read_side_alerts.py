"""Alerts about the read side itself (a projection stalled, a stream parked) reach the robot without reading any
projection, since the alerts table may be exactly what is stuck; once the table catches up, the normal path
does not send them again. On the embedded default (SQLite) and on PostgreSQL with Redis."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from projections.runner import MAX_TRIES
from tests.support.alipay import SandboxAlipay
from tests.support.parking import legacy_order
from tests.support.read_side import (
    RefusingStore,
    alert_rows,
    alerts_in_messages,
    robot_env,
    robot_name,
    stalled_told,
    sweeping,
    told,
    working,
)
from tests.support.refs import ref
from tests.support.robots import FakeDingTalk
from tests.support.waiting import wait_until


def pay(ledger: Ledger, alipay: SandboxAlipay) -> None:
    ledger.service.record_callback(RecordCallback(alipay.body(ref("R")), "127.0.0.1"))


def park_a_stream(ledger: Ledger, alipay: SandboxAlipay) -> str:
    """An order no projection can store, parked by the runner's own steps (tried MAX_TRIES times, as the
    follower does); then the runner stops, so the alerts table stays where it is."""
    assert ledger.runner is not None
    pay(ledger, alipay)
    poison = legacy_order(ledger, ref("R"))
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(Exception):  # noqa: B017  (whatever the database says of the poison)
            ledger.runner.step()
    ledger.runner.step()
    assert [row["stream_id"] for row in ledger.runner.parked()] == [poison]
    return poison


def stall_every_projection(ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> set[str]:
    """Events recorded while no projection runs, the sweep watching: the robot is told of each stalled one."""
    assert ledger.runner is not None
    pay(ledger, alipay)
    stalled = set(ledger.runner.positions())
    assert "alerts" in stalled
    with sweeping(ledger):
        assert wait_until(lambda: set(stalled_told(robot)) == stalled), robot.texts
    return stalled


def catch_up_and_send(ledger: Ledger) -> None:
    """The table catches up (its dispatcher wakes the send_alerts actor) and the normal path sends what waits."""
    assert ledger.runner is not None and ledger.alerting is not None
    alerting, name = ledger.alerting, robot_name(ledger)
    with working(ledger):
        ledger.runner.catch_up()
        assert wait_until(lambda: alerting.send_pending()[name] == 0, seconds=30)
    assert all(name in row["sent_to"] for row in alert_rows(ledger))


class ReadSideAlertsContract:
    @pytest.fixture
    def env(self) -> dict[str, str]:
        raise NotImplementedError

    @pytest.fixture
    def ledger(self, env: dict[str, str], make_ledger: Callable[..., Ledger], robot: FakeDingTalk) -> Ledger:
        return make_ledger(env["LEDGER_DATABASE_URL"], **{**env, **robot_env(robot)})

    def test_a_stall_found_by_the_sweep_reaches_the_robot_while_no_projection_moves(
            self, ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
        stalled = stall_every_projection(ledger, robot, alipay)
        assert alert_rows(ledger) == []  # told without the alerts table, which holds nothing yet
        # Raised together in one sweep, they go out together: one message.
        assert len(robot.messages) == 1 and stalled_told(robot) == Counter(dict.fromkeys(stalled, 1))

    def test_stall_alerts_are_not_sent_again_once_the_alerts_table_catches_up(
            self, ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
        stalled = stall_every_projection(ledger, robot, alipay)
        catch_up_and_send(ledger)
        assert stalled_told(robot) == Counter(dict.fromkeys(stalled, 1))
        assert alerts_in_messages(robot) == len(alert_rows(ledger)) == len(stalled)

    def test_a_stall_alert_the_robot_refused_goes_out_on_a_later_sweep_still_without_the_table(
            self, ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
        robot.fail_next(1, status=503, body=b"Service Unavailable")
        stalled = stall_every_projection(ledger, robot, alipay)  # the second try waits out the robot's pace
        assert robot.requests == 2 and len(robot.messages) == 1
        assert alert_rows(ledger) == []
        catch_up_and_send(ledger)
        assert stalled_told(robot) == Counter(dict.fromkeys(stalled, 1))

    def test_a_parked_stream_reaches_the_robot_while_the_alerts_table_stays_behind(
            self, ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
        poison = park_a_stream(ledger, alipay)
        assert wait_until(lambda: len(told(robot, "projection_parked")) == 1), robot.texts
        assert poison in told(robot, "projection_parked")[0]
        assert alert_rows(ledger) == []

    def test_a_parked_stream_is_not_sent_again_once_the_alerts_table_catches_up(
            self, ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
        park_a_stream(ledger, alipay)
        assert wait_until(lambda: len(told(robot, "projection_parked")) == 1), robot.texts
        catch_up_and_send(ledger)
        assert len(told(robot, "projection_parked")) == 1
        assert alerts_in_messages(robot) == len(alert_rows(ledger)) == 1

    def test_parking_neither_fails_nor_waits_while_its_alert_cannot_be_recorded_and_it_is_recorded_later(
            self, ledger: Ledger, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
        assert ledger.alerting is not None
        ledger.alerting.store = RefusingStore(ledger.alerting.store, refusals=2)  # type: ignore[assignment]
        robot.stall_next(1.0)  # and the robot is slow to answer
        started = time.monotonic()
        poison = park_a_stream(ledger, alipay)  # the step that parks returns, though the alert is not in
        assert time.monotonic() - started < 1.0
        assert wait_until(lambda: len(told(robot, "projection_parked")) == 1), robot.texts
        assert poison in told(robot, "projection_parked")[0]


class TestReadSideAlertsEmbedded(ReadSideAlertsContract):
    @pytest.fixture
    def env(self, sqlite_url: str) -> dict[str, str]:
        return {"LEDGER_DATABASE_URL": sqlite_url}


class TestReadSideAlertsOnPostgresAndRedis(ReadSideAlertsContract):
    @pytest.fixture
    def env(self, postgres_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
        return {"LEDGER_DATABASE_URL": postgres_url, "LEDGER_REDIS_URL": redis_url, "LEDGER_REDIS_PREFIX": redis_prefix}

    def test_a_stall_alert_one_process_could_not_send_goes_out_from_another_without_the_table(
            self, env: dict[str, str], make_ledger: Callable[..., Ledger], robot: FakeDingTalk,
            alipay: SandboxAlipay) -> None:
        projections = make_ledger(env["LEDGER_DATABASE_URL"], **{**env, **robot_env(robot)})
        assert projections.runner is not None
        robot.fail_next(1, status=503, body=b"Service Unavailable")
        pay(projections, alipay)
        with sweeping(projections):
            assert wait_until(lambda: robot.requests == 1)
        stalled = set(projections.runner.positions())  # and that process stops before trying again
        assert robot.messages == []
        worker = make_ledger(env["LEDGER_DATABASE_URL"], migrate_first=False, **{**env, **robot_env(robot)})
        assert worker.alerting is not None
        alerting, name = worker.alerting, robot_name(worker)
        assert wait_until(lambda: alerting.send_pending()[name] == 0)  # what the send_alerts actor calls
        assert stalled_told(robot) == Counter(dict.fromkeys(stalled, 1))
        assert alert_rows(worker) == []
