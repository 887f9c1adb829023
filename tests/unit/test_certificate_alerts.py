"""A certificate that expires within 30 days raises an alert naming the app, the certificate and the fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.alipay.keyring import cert_sn
from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox import generate_key_pair, load_private_key
from ledger.config import Settings
from ledger.service.certificates import KIND, alert_expiring
from tests.support.certs import CertifiedAlipay, pem

APP_ID = "2021000000000001"


class Raised:
    """Stands in for AlertService.raise_alert, deduplicating as it does: once per (kind, key, window)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, str, str, datetime]] = []

    def __call__(self, kind: str, key: str, message: str, at: datetime | None = None, **_: Any) -> bool:
        assert at is not None
        if any((kind, key, at) == (k, kk, a) for k, kk, _, a in self.alerts):
            return False
        self.alerts.append((kind, key, message, at))
        return True


def settings_with(alipay: CertifiedAlipay, **extra: str) -> Settings:
    return Settings.from_env({"LEDGER_ALIPAY_APP_ID": APP_ID, "LEDGER_ALIPAY_PUBLIC_KEY": alipay.public_cert_file(),
                              "LEDGER_ALIPAY_ROOT_CERT": alipay.root_cert_file(), **extra})


@pytest.fixture(scope="module")
def expiring_soon() -> CertifiedAlipay:
    return CertifiedAlipay.new(expires_in=timedelta(days=10))


def test_alipays_certificate_expiring_in_10_days_raises_an_alert_naming_app_certificate_expiry_and_fix(
        expiring_soon: CertifiedAlipay) -> None:
    raised, now = Raised(), datetime.now(UTC)
    assert alert_expiring(settings_with(expiring_soon).apps, raised, now=now) == 1
    [(kind, key, message, _)] = raised.alerts
    certificate = expiring_soon.certificate
    sn = cert_sn(certificate)
    assert (kind, key) == (KIND, f"{APP_ID}/{sn}")
    assert message == (f"app {APP_ID}: Alipay's certificate SN {sn} expires on "
                       f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC (in 10 days): add the new "
                       "alipayCertPublicKey_RSA2.crt to LEDGER_ALIPAY_PUBLIC_KEY beside it (remove it once expired); "
                       f"subject {certificate.subject.rfc4514_string()}")


def test_a_certificate_with_more_than_30_days_left_raises_nothing() -> None:
    raised = Raised()
    assert alert_expiring(settings_with(CertifiedAlipay.new(expires_in=timedelta(days=31))).apps, raised,
                          now=datetime.now(UTC)) == 0
    assert raised.alerts == []


def test_the_alert_is_raised_once_a_day_however_often_it_is_checked(expiring_soon: CertifiedAlipay) -> None:
    apps, raised = settings_with(expiring_soon).apps, Raised()
    today = datetime.now(CHINA_STANDARD_TIME).replace(hour=0, minute=0, second=0, microsecond=0)
    checks = [(today + timedelta(hours=hours, minutes=30)).astimezone(UTC) for hours in range(24)]
    assert [alert_expiring(apps, raised, now=at) for at in checks] == [1] + [0] * 23
    assert alert_expiring(apps, raised, now=today + timedelta(days=1)) == 1  # the next day in China
    assert [at for *_, at in raised.alerts] == [today, today + timedelta(days=1)]


def test_the_apps_own_certificate_expiring_soon_raises_an_alert_with_its_own_fix(
        expiring_soon: CertifiedAlipay) -> None:
    alipay = CertifiedAlipay.new()
    app_key = load_private_key(generate_key_pair()[0])
    app_certificate = alipay.intermediate.issue(app_key.public_key(), "Test app", expires_in=timedelta(days=10))
    raised = Raised()
    assert alert_expiring(settings_with(alipay, LEDGER_ALIPAY_APP_CERT=pem(app_certificate)).apps, raised,
                          now=datetime.now(UTC)) == 1
    [(_, key, message, _)] = raised.alerts
    assert key == f"{APP_ID}/{cert_sn(app_certificate)}"
    assert message.startswith(f"app {APP_ID}: the app's certificate SN {cert_sn(app_certificate)} expires on ")
    assert message.endswith(": renew it in the open platform console, set LEDGER_ALIPAY_APP_CERT to the new "
                            f"appCertPublicKey_{APP_ID}.crt; subject {app_certificate.subject.rfc4514_string()}")
