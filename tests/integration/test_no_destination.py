"""Deliveries with no downstream URL and alerts with no robot say so in the read model and the gauges, rather
than looking pending for ever (an outage, to anyone reading the metrics)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from api.app import create_app
from ledger.adapters.outbound.robots import MemoryRobot
from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from projections.tables import alerts, deliveries
from tests.support.alipay import SandboxAlipay
from tests.support.api import TOKENS, as_role

DOWNSTREAM = {"LEDGER_DOWNSTREAM_URL": "http://127.0.0.1:9/hook", "LEDGER_DOWNSTREAM_SECRET": "s" * 32}


def delivery_states(ledger: Ledger) -> list[str]:
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        return list(conn.execute(sa.select(deliveries.c.state)).scalars())


def alert_statuses(ledger: Ledger) -> list[str]:
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        return list(conn.execute(sa.select(alerts.c.status)).scalars())


def pay(ledger: Ledger, alipay: SandboxAlipay, out_trade_no: str) -> None:
    ledger.service.record_callback(RecordCallback(alipay.body(out_trade_no), ""))
    assert ledger.runner is not None
    ledger.runner.catch_up()


def test_a_change_with_no_downstream_to_go_to_is_no_downstream_in_the_table_and_the_gauge(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url)
    pay(ledger, alipay, "NOWHERE-1")
    assert delivery_states(ledger) == ["no_downstream"]
    assert ledger.metrics is not None
    scraped = generate_latest(ledger.metrics.registry).decode()
    assert 'ledger_deliveries{state="no_downstream"} 1.0' in scraped and 'state="pending"' not in scraped


def test_a_change_with_a_downstream_is_pending_until_it_is_attempted(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url, **DOWNSTREAM)  # no worker runs: the message waits on the stub broker
    pay(ledger, alipay, "SOMEWHERE-1")
    assert delivery_states(ledger) == ["pending"]


def test_an_alert_no_robot_can_take_is_no_robots_and_not_counted_as_waiting(
        make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS)
    assert ledger.alerting is not None
    assert ledger.alerting.raise_alert("amount_mismatch", "order/1", "a test alert")
    assert ledger.runner is not None
    ledger.runner.catch_up()
    assert alert_statuses(ledger) == ["no_robots"]
    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        counts = client.get("/api/alerts", headers=as_role("operator")).json()
    assert (counts["waiting_to_be_sent"], counts["no_robots"]) == (0, 1)


def test_an_alert_with_a_robot_waits_until_it_is_sent(make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    robot = MemoryRobot()
    ledger = make_ledger(sqlite_url, overrides={"robots": [robot]})
    assert ledger.alerting is not None
    assert ledger.alerting.raise_alert("amount_mismatch", "order/2", "a test alert")
    assert ledger.runner is not None
    ledger.runner.catch_up()
    assert alert_statuses(ledger) == ["waiting"]
    assert ledger.alerting.send_pending() == {robot.name: 1}
    ledger.runner.catch_up()
    assert alert_statuses(ledger) == ["sent"]
