"""`ledger doctor`: prove the configuration before money moves, one line per check, each failure with its fix.

The decisive check asks the gateway about an order that cannot exist: Alipay answers a signed
`ACQ.TRADE_NOT_EXIST`, which proves at once that the gateway accepts the app's private key and that the
configured Alipay key verifies Alipay's signature (the app's own public key, configured by mistake, does not).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from ledger.adapters.outbound.http import HttpClient, OutboundError
from ledger.config import AlipayApp
from ledger.domain.errors import GatewayError
from ledger.domain.trade_query import METHOD, TRADE_NOT_EXIST
from ledger.service.ports import Gateway

CLOCK_SLACK = timedelta(minutes=1)
EXPIRY_WARNING = timedelta(days=30)
PASS, FAIL, SKIP = "ok", "FAIL", "skip"

# What a refusal means, and what to do about it.
_FIXES = {
    "bad_signature": "the configured Alipay public key does not verify Alipay's answer: it is probably the app's "
                     "own public key; configure Alipay's public key (支付宝公钥) from the open-platform console",
    "unsigned": "the gateway answered unsigned, which it does when it knows no key for the app: check the app_id "
                "and that a key (or certificate) is uploaded for it in the console",
    "request_refused": "the gateway refused the request: if it says isv.invalid-signature, the app private key does "
                       "not match the app public key uploaded to Alipay; if isv.invalid-app-id, the app_id is wrong",
    "unavailable": "the gateway could not be reached: check LEDGER_ALIPAY_GATEWAY_URL and the outbound network "
                   "(proxies: https_proxy)",
    "malformed": "the gateway's answer is not Alipay's: check LEDGER_ALIPAY_GATEWAY_URL",
}


@dataclass(frozen=True)
class Check:
    status: str  # PASS, FAIL or SKIP
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Doctor:
    apps: Mapping[str, AlipayApp]
    gateway: Gateway
    gateway_url: str
    database: Callable[[], str | None]  # why the database cannot be used, or None
    redis: Callable[[], str | None] | None  # likewise for Redis; None when none is configured
    notify_url: str | None
    clock: Callable[[], datetime]
    http: HttpClient

    def checks(self) -> Iterator[Check]:
        for app in self.apps.values():
            yield from self._keys(app)
            yield self._gateway(app)
        yield self._clock()
        yield self._service("database", self.database)
        if self.redis is not None:
            yield self._service("redis", self.redis)
        yield self._notify_url()

    def _keys(self, app: AlipayApp) -> Iterator[Check]:
        now = self.clock()
        for key in app.keys.keys:
            name = f"app {app.app_id} Alipay key {key.fingerprint[:16]}"
            if key.not_after is None:
                yield Check(PASS, name, "an RSA public key")
            elif key.not_after <= now:
                yield Check(FAIL, name, f"the certificate {key.subject} expired on {key.not_after:%Y-%m-%d}: "
                                        "download the new one from the console")
            elif key.not_after - now <= EXPIRY_WARNING:
                yield Check(FAIL, name, f"the certificate {key.subject} expires on {key.not_after:%Y-%m-%d}, within "
                                        "30 days: download the new one from the console and add it to the ring")
            else:
                yield Check(PASS, name, f"certificate SN {key.cert_sn}, valid until {key.not_after:%Y-%m-%d}")

    def _gateway(self, app: AlipayApp) -> Check:
        name = f"app {app.app_id} gateway"
        if app.private_key is None:
            return Check(SKIP, name, f"no app private key ({app.settings_prefix}APP_PRIVATE_KEY): the ledger never "
                                     "asks Alipay about this app's trades, and the keys cannot be proved here")
        try:
            answer = self.gateway.call(app.app_id, METHOD, {"out_trade_no": f"ledger-doctor-{uuid.uuid4().hex}"})
        except GatewayError as exc:
            fix = _FIXES.get(exc.reason, "see the detail")
            return Check(FAIL, name, f"{exc} — {fix}")
        if answer.sub_code == TRADE_NOT_EXIST or answer.ok:
            return Check(PASS, name, f"the gateway accepted the app's signature and its signed answer verified with "
                                     f"Alipay key {answer.key[:16]}")
        said = answer.fields.get("sub_msg", "")
        return Check(FAIL, name, f"unexpected answer {answer.code} {answer.sub_code}: {said}")

    def _clock(self) -> Check:
        try:
            answer = self.http.post(self.gateway_url, b"", {"Content-Type": "application/x-www-form-urlencoded"})
            theirs = parsedate_to_datetime(answer.date)
        except OutboundError as exc:
            return Check(FAIL, "clock", f"could not read the gateway's time: {exc}")
        except (TypeError, ValueError):
            return Check(SKIP, "clock", "the gateway sent no Date header to compare with")
        drift = abs(self.clock() - theirs.astimezone(UTC))
        if drift > CLOCK_SLACK:
            return Check(FAIL, "clock", f"this host's clock is {drift.total_seconds():.0f} s off the gateway's: "
                                        "Alipay refuses requests whose timestamp is off; run NTP (chrony, timesyncd)")
        return Check(PASS, "clock", f"within {drift.total_seconds():.0f} s of the gateway's")

    @staticmethod
    def _service(name: str, problem: Callable[[], str | None]) -> Check:
        try:
            found = problem()
        except Exception as exc:  # a check must report, never crash the others
            found = f"{type(exc).__name__}: {exc}"
        return Check(FAIL, name, found) if found else Check(PASS, name, "answers")

    def _notify_url(self) -> Check:
        url = self.notify_url
        if not url:
            return Check(SKIP, "notify URL", "LEDGER_PUBLIC_NOTIFY_URL is not set: nothing to check")
        if urlsplit(url).query:
            return Check(FAIL, "notify URL", "has a query string, which Alipay does not allow in notify_url: "
                                             "give the path alone")
        try:
            answer = self.http.post(url, b"", {"Content-Type": "application/x-www-form-urlencoded"})
        except OutboundError as exc:
            return Check(FAIL, "notify URL", f"{exc}: Alipay could not reach it either (firewall? DNS? TLS?)")
        if answer.body.strip() != b"fail":
            return Check(FAIL, "notify URL", f"answered HTTP {answer.status} {answer.body[:60]!r} to an empty POST, "
                                             "not `fail`: it does not reach this ledger (a proxy, a CSRF filter, "
                                             "a login page?)")
        return Check(PASS, "notify URL", "answers `fail` to an empty POST, as this ledger does")
