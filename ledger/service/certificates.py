"""Certificates that expire soon: an alert for each (Alipay's in the key ring, the app's own), naming the app,
the certificate and the fix, so a renewal is not found out when notifications stop verifying.

The sweep checks at start-up and then about hourly; the alert of one certificate is raised once a day (its
time is the start of that day in China Standard Time): the window of deduplication is the day's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.alipay.keyring import AlipayKey
from ledger.config import AlipayApp
from ledger.service.alerting import once_a_day

KIND = "certificate_expiring"
DAY = timedelta(days=1)
WARN_BEFORE = 30 * DAY


@dataclass(frozen=True)
class Expiring:
    app: AlipayApp
    certificate: AlipayKey
    not_after: datetime
    whose: str  # "Alipay's", "the app's"
    fix: str

    def message(self, now: datetime) -> str:
        """The subject last: a chat robot's line is cut at 300 characters, and a subject can be long."""
        when = (f"expires on {self.not_after:%Y-%m-%d %H:%M} UTC (in {round((self.not_after - now) / DAY)} days)"
                if self.not_after > now else f"expired on {self.not_after:%Y-%m-%d %H:%M} UTC")
        return (f"app {self.app.app_id}: {self.whose} certificate SN {self.certificate.cert_sn} {when}: {self.fix}; "
                f"subject {self.certificate.subject}")


def expiring(apps: Mapping[str, AlipayApp], *, now: datetime, within: timedelta = WARN_BEFORE) -> list[Expiring]:
    """Each certificate of the apps that expires within `within` of `now`, with what fixes it."""
    found = []
    for app in apps.values():
        prefix = app.settings_prefix
        for key in app.keys.keys:
            if key.not_after is not None and key.not_after - now <= within:
                fix = f"add the new alipayCertPublicKey_RSA2.crt to {prefix}PUBLIC_KEY beside it " \
                      "(remove it once expired)"
                found.append(Expiring(app, key, key.not_after, "Alipay's", fix))
        own = app.app_cert
        if own is not None and own.not_after is not None and own.not_after - now <= within:
            found.append(Expiring(app, own, own.not_after, "the app's", "renew it in the open platform console, set "
                                  f"{prefix}APP_CERT to the new appCertPublicKey_{app.app_id}.crt"))
    return found


def alert_expiring(apps: Mapping[str, AlipayApp], raise_alert: Callable[..., bool], *, now: datetime,
                   within: timedelta = WARN_BEFORE) -> int:
    """Raise an alert for each certificate expiring within `within`; how many were not raised already today."""
    day = once_a_day(now)
    return sum(bool(raise_alert(KIND, f"{item.app.app_id}/{item.certificate.cert_sn}", item.message(now), day))
               for item in expiring(apps, now=now, within=within))
