"""The sweep raises an alert for a certificate that expires within 30 days: at start-up, then about hourly,
and the robot is told which app, which certificate, when and what to do."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.runtime import CERTIFICATE_CHECK, Sweeper
from ledger.alipay.keyring import cert_sn
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.bootstrap import Ledger
from projections.tables import alerts
from tests.support.certs import CertifiedAlipay
from tests.support.read_side import robot_env, told
from tests.support.robots import FakeDingTalk


@pytest.fixture(scope="module")
def expiring_soon() -> CertifiedAlipay:
    return CertifiedAlipay.new(expires_in=timedelta(days=10))


def cert_env(alipay: CertifiedAlipay) -> dict[str, str]:
    return {"LEDGER_ALIPAY_PUBLIC_KEY": alipay.public_cert_file(), "LEDGER_ALIPAY_ROOT_CERT": alipay.root_cert_file()}


def certificate_alerts(ledger: Ledger) -> list[dict[str, Any]]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(alerts).where(alerts.c.kind == "certificate_expiring")).mappings()
        return [dict(row) for row in rows]


def test_the_sweep_alerts_at_start_up_of_a_certificate_expiring_in_10_days_and_the_robot_is_told(
        make_ledger: Callable[..., Ledger], sqlite_url: str, robot: FakeDingTalk,
        expiring_soon: CertifiedAlipay) -> None:
    ledger = make_ledger(sqlite_url, **cert_env(expiring_soon), **robot_env(robot))
    sweeper = Sweeper(ledger, every=3600, grace=timedelta(seconds=30))  # no sweep comes within the test
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while not (found := certificate_alerts(ledger)):
            assert time.monotonic() < deadline, "no alert at start-up"
            time.sleep(0.05)
    finally:
        sweeper.stop()
    sn, certificate = cert_sn(expiring_soon.certificate), expiring_soon.certificate
    [alert] = found
    assert alert["key"] == f"2021000000000001/{sn}"
    assert alert["message"].startswith(f"app 2021000000000001: Alipay's certificate SN {sn} expires on "
                                       f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC (in 10 days): add ")
    assert alert["message"].endswith(f"; subject {certificate.subject.rfc4514_string()}")
    assert ledger.alerting is not None
    ledger.alerting.send_pending()
    [line] = told(robot, "certificate_expiring")  # cut at 300 characters: within the subject, which comes last
    assert line.startswith(alert["message"].partition("; subject")[0] + "; subject CN=Test Alipay Public Key RSA2")


def test_the_sweep_checks_the_certificates_at_most_once_an_hour_and_alerts_once_a_day(
        make_ledger: Callable[..., Ledger], sqlite_url: str, expiring_soon: CertifiedAlipay) -> None:
    # 01:00 China Standard Time tomorrow: the two hours below stay within one of the alert's days, whenever it runs.
    tomorrow = datetime.now(CHINA_STANDARD_TIME).date() + timedelta(days=1)
    now = [datetime(tomorrow.year, tomorrow.month, tomorrow.day, 1, tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)]
    ledger = make_ledger(sqlite_url, overrides={"clock": lambda: now[0]}, **cert_env(expiring_soon))
    assert ledger.alerting is not None
    raise_alert, checks = ledger.alerting.raise_alert, []

    def counting(kind: str, *args: Any, **kwargs: Any) -> bool:
        if kind == "certificate_expiring":
            checks.append(now[0])
        return raise_alert(kind, *args, **kwargs)

    ledger.alerting.raise_alert = counting  # type: ignore[method-assign]
    sweeper = Sweeper(ledger, every=30, grace=timedelta(seconds=30))
    start = now[0]
    for minutes in (0, 1, 30, 59, 61, 62, 122):
        now[0] = start + timedelta(minutes=minutes)
        sweeper.sweep_once()
    assert checks == [start, start + timedelta(minutes=61), start + timedelta(minutes=122)]
    assert len(certificate_alerts(ledger)) == 1  # checked thrice, raised once: the day's window
    now[0] = start + timedelta(days=1, minutes=1)
    sweeper.sweep_once()
    assert len(certificate_alerts(ledger)) == 2
    assert timedelta(hours=1) == CERTIFICATE_CHECK


def test_certificates_with_more_than_30_days_left_raise_no_alert(
        make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url, **cert_env(CertifiedAlipay.new(expires_in=timedelta(days=31))))
    Sweeper(ledger, every=30, grace=timedelta(seconds=30)).sweep_once()
    assert certificate_alerts(ledger) == []
