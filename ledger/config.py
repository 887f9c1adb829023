"""Configuration: every `LEDGER_*` environment variable, read once, typed and validated at start-up."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from starlette.config import Config
from starlette.datastructures import Secret

from ledger.adapters.eventstore.store import persistence_env
from ledger.alipay.certs import chain_problem, load_app_certificate, load_certificates, root_cert_sn
from ledger.alipay.keyring import AlipayKey, KeyRing, fingerprint, load_key_ring
from ledger.alipay.keys import load_app_private_key
from ledger.domain.errors import LedgerError

DEFAULT_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY_URL = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
# Seconds after an order's registration at which the ledger asks Alipay about it while no notification has
# come: Alipay's own notification retry schedule (4m, 10m, 10m, 1h, 2h, 6h, 15h).
DEFAULT_QUERY_SCHEDULE = (240.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)
ROLES = frozenset({"merchant", "auditor", "finance", "operator"})
MIN_TOKEN_LENGTH = 16


class SettingsError(LedgerError):
    """The configuration is missing something or has a malformed value."""

    reason = "settings"


@dataclass(frozen=True)
class AlipayApp:
    app_id: str
    keys: KeyRing = field(repr=False)  # Alipay's public keys or certificates: any of them may sign
    seller_id: str | None = None
    # The app's own private key: signs requests to the gateway (trade queries); None: the app makes none.
    private_key: RSAPrivateKey | None = field(default=None, repr=False)
    # A service provider (ISV) acting for merchants: each merchant's (auth_app_id's) app_auth_token.
    app_auth_tokens: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    name: str = ""  # the LEDGER_ALIPAY_<NAME>_ of its settings; empty for the default app
    # Certificate mode: the serial numbers requests carry ("" in public-key mode), and the app's certificate.
    app_cert_sn: str = ""
    alipay_root_cert_sn: str = ""
    app_cert: AlipayKey | None = field(default=None, repr=False)

    @property
    def settings_prefix(self) -> str:
        return f"LEDGER_ALIPAY_{self.name}_" if self.name else "LEDGER_ALIPAY_"


@dataclass(frozen=True)
class ApiToken:
    """Who holds an API token: its one role, and the name it was given (`role/name:token`), if any."""

    role: str
    name: str = ""

    @property
    def who(self) -> str:
        """As recorded with what the holder does: "operator alice", or the role alone for an unnamed token."""
        return f"{self.role} {self.name}" if self.name else self.role


@dataclass(frozen=True)
class Settings:
    database_url: Secret
    redis_url: Secret | None
    redis_prefix: str
    apps: Mapping[str, AlipayApp]
    lock_ttl_seconds: float
    lock_wait_ms: int
    api_tokens: Mapping[str, ApiToken] = field(repr=False)
    require_known_orders: bool
    rejected_log_size: int
    max_copies: int = 20
    projections_inline: bool = True
    downstream_url: str | None = None
    downstream_secret: Secret | None = None
    downstream_timeout_seconds: float = 10.0
    retry_max: int = 3
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0
    delivery_lease_seconds: float = 120.0
    sweep_seconds: float = 30.0
    dingtalk_url: Secret | None = None
    dingtalk_secret: Secret | None = None
    wecom_url: Secret | None = None
    alert_dedup_seconds: int = 600
    signature_alert_threshold: int = 20
    projection_stall_seconds: float = 120.0
    request_read_seconds: float = 10.0
    max_connections: int = 1000
    refusals_per_second: float = 20.0
    trusted_proxies: tuple[str, ...] = ()
    log_format: str = "text"
    access_log: bool = False
    gateway_url: str = DEFAULT_GATEWAY_URL
    gateway_timeout_seconds: float = 10.0
    query_schedule: tuple[float, ...] = DEFAULT_QUERY_SCHEDULE
    public_notify_url: str | None = None
    bill_dir: Path | None = None  # where imported bills' bytes go; None: the database
    bill_fetch_at: time | None = time(10, 0)  # China Standard Time; None: no daily bill job
    bill_deadline: time = time(18, 0)  # China Standard Time, the same day
    findings_grace_hours: float = 24.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings, collecting every problem into one SettingsError."""
        problems: list[str] = []
        config = Config(environ=dict(environ), env_prefix="LEDGER_")

        def read(key: str, cast: Any = None, default: Any = None) -> Any:
            try:
                return config(key, cast=cast, default=default)
            except ValueError:
                problems.append(f"LEDGER_{key} is not a valid {getattr(cast, '__name__', 'value')}")
                return default

        database_url = read("DATABASE_URL", default="sqlite:///ledger.db")
        try:
            persistence_env(database_url)
        except ValueError as exc:
            problems.append(f"LEDGER_DATABASE_URL: {exc}")
        redis_url = read("REDIS_URL") or None
        if redis_url and not re.match(r"^rediss?://", redis_url):
            problems.append("LEDGER_REDIS_URL must start with redis:// or rediss://")
        settings = cls(
            database_url=Secret(database_url),
            redis_url=Secret(redis_url) if redis_url else None,
            redis_prefix=read("REDIS_PREFIX", default="ledger"),
            apps=_apps(environ, problems),
            lock_ttl_seconds=_positive(read("LOCK_TTL_SECONDS", float, 300.0), "LOCK_TTL_SECONDS", problems),
            lock_wait_ms=_positive(read("LOCK_WAIT_MS", int, 3000), "LOCK_WAIT_MS", problems),
            api_tokens=_tokens(read("API_TOKENS", default=""), problems),
            require_known_orders=read("REQUIRE_KNOWN_ORDERS", _flag, False),
            rejected_log_size=_positive(read("REJECTED_LOG_SIZE", int, 10_000), "REJECTED_LOG_SIZE", problems),
            max_copies=_positive(read("MAX_COPIES", int, 20), "MAX_COPIES", problems),
            projections_inline=_projections_mode(read("PROJECTIONS", default="inline"), problems),
            **_jobs(read, problems),
            **_serving(read, problems),
            **_logging(read, problems),
            **_gateway(read, problems),
            **_reconciliation(read, problems),
        )
        if problems:
            raise SettingsError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return settings

    def require_apps(self) -> None:
        if not self.apps:
            raise SettingsError("no Alipay app configured: set LEDGER_ALIPAY_APP_ID and "
                                "LEDGER_ALIPAY_PUBLIC_KEY (or LEDGER_ALIPAY_PUBLIC_KEY_FILE)")

    def require_shared_services(self, what: str) -> None:
        """`what` runs in several processes: the embedded default's lock and database are for one."""
        if not (str(self.database_url).startswith("postgres") and self.redis_url):
            raise SettingsError(f"{what} needs PostgreSQL (LEDGER_DATABASE_URL) and Redis (LEDGER_REDIS_URL): "
                                "the embedded default's lock and database are for one process")


def _flag(value: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(value)


_flag.__name__ = "flag (on/off)"


def _jobs(read: Any, problems: list[str]) -> dict[str, Any]:
    """Downstream delivery, retries and alerts (the failure stream)."""
    url, secret = read("DOWNSTREAM_URL") or None, read("DOWNSTREAM_SECRET") or None
    if url and not re.match(r"^https?://", url):
        problems.append("LEDGER_DOWNSTREAM_URL must start with http:// or https://")
    if url and not secret:
        problems.append("LEDGER_DOWNSTREAM_SECRET is required with LEDGER_DOWNSTREAM_URL (deliveries are signed)")
    for key in ("ALERT_DINGTALK_URL", "ALERT_WECOM_URL"):
        if (read(key) or "https://").split("://")[0] not in ("http", "https"):
            problems.append(f"LEDGER_{key} must start with http:// or https://")
    values = {
        "downstream_url": url, "downstream_secret": Secret(secret) if secret else None,
        "downstream_timeout_seconds": read("DOWNSTREAM_TIMEOUT_SECONDS", float, 10.0),
        "retry_max": read("RETRY_MAX", int, 3),
        "retry_base_seconds": read("RETRY_BASE_SECONDS", float, 30.0),
        "retry_cap_seconds": read("RETRY_CAP_SECONDS", float, 3600.0),
        "delivery_lease_seconds": read("DELIVERY_LEASE_SECONDS", float, 120.0),
        "sweep_seconds": read("SWEEP_SECONDS", float, 30.0),
        "dingtalk_url": Secret(read("ALERT_DINGTALK_URL")) if read("ALERT_DINGTALK_URL") else None,
        "dingtalk_secret": Secret(read("ALERT_DINGTALK_SECRET")) if read("ALERT_DINGTALK_SECRET") else None,
        "wecom_url": Secret(read("ALERT_WECOM_URL")) if read("ALERT_WECOM_URL") else None,
        "alert_dedup_seconds": read("ALERT_DEDUP_SECONDS", int, 600),
        "signature_alert_threshold": read("SIGNATURE_ALERT_THRESHOLD", int, 20),
        "projection_stall_seconds": read("PROJECTION_STALL_SECONDS", float, 120.0),
    }
    if values["retry_max"] is not None and values["retry_max"] < 0:
        problems.append("LEDGER_RETRY_MAX must be 0 or more")
    for key in ("retry_base_seconds", "retry_cap_seconds", "delivery_lease_seconds", "sweep_seconds",
                "downstream_timeout_seconds", "alert_dedup_seconds", "signature_alert_threshold",
                "projection_stall_seconds"):
        _positive(values[key], key.upper(), problems)
    if (values["retry_base_seconds"] or 0) > (values["retry_cap_seconds"] or 0):
        problems.append("LEDGER_RETRY_CAP_SECONDS must be at least LEDGER_RETRY_BASE_SECONDS")
    return values


def _serving(read: Any, problems: list[str]) -> dict[str, Any]:
    """`ledger serve` facing the internet: slow clients, connections, floods of forgeries, proxies (see
    docs/internet-facing.md)."""
    values = {
        "request_read_seconds": read("REQUEST_READ_SECONDS", float, 10.0),
        "max_connections": read("MAX_CONNECTIONS", int, 1000),
        "refusals_per_second": read("REFUSALS_PER_SECOND", float, 20.0),
        "trusted_proxies": _trusted_proxies(read("TRUSTED_PROXIES", default=""), problems),
    }
    for key in ("request_read_seconds", "max_connections", "refusals_per_second"):
        _positive(values[key], key.upper(), problems)
    return values


LOG_FORMATS = ("text", "json")


def _logging(read: Any, problems: list[str]) -> dict[str, Any]:
    """How the processes log: LEDGER_LOG_FORMAT text (a line for people) or json (one object a line, for a
    collector); LEDGER_ACCESS_LOG on adds a line per HTTP request (uvicorn's access log), off by default."""
    log_format = str(read("LOG_FORMAT", default="text")).strip().lower()
    if log_format not in LOG_FORMATS:
        problems.append(f"LEDGER_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        log_format = "text"
    return {"log_format": log_format, "access_log": bool(read("ACCESS_LOG", _flag, False))}


def _gateway(read: Any, problems: list[str]) -> dict[str, Any]:
    """Asking Alipay (trade queries): the gateway, its deadline, the query schedule, the notify URL to check."""
    url = str(read("ALIPAY_GATEWAY_URL", default=DEFAULT_GATEWAY_URL)).strip()
    if not re.match(r"^https?://[^/?#]+", url):
        problems.append("LEDGER_ALIPAY_GATEWAY_URL must be an http:// or https:// URL")
    notify_url = str(read("PUBLIC_NOTIFY_URL", default="")).strip() or None
    if notify_url and not re.match(r"^https?://[^/?#]+", notify_url):
        problems.append("LEDGER_PUBLIC_NOTIFY_URL must be an http:// or https:// URL")
    values = {"gateway_url": url, "gateway_timeout_seconds": read("GATEWAY_TIMEOUT_SECONDS", float, 10.0),
              "query_schedule": _schedule(str(read("QUERY_SCHEDULE", default="")), problems),
              "public_notify_url": notify_url,
              "bill_dir": Path(read("BILL_DIR")) if read("BILL_DIR") else None}
    _positive(values["gateway_timeout_seconds"], "GATEWAY_TIMEOUT_SECONDS", problems)
    return values


def _reconciliation(read: Any, problems: list[str]) -> dict[str, Any]:
    """The daily bill job, in China Standard Time: the day before's bill fetched from LEDGER_BILL_FETCH_AT (`off`:
    no job) and tried again until LEDGER_BILL_DEADLINE; a day's findings open LEDGER_FINDINGS_GRACE_HOURS alert."""
    fetch_text = str(read("BILL_FETCH_AT") or "10:00").strip().lower()
    fetch_at = None if fetch_text == "off" else _time_of_day(fetch_text, "BILL_FETCH_AT", problems)
    deadline = _time_of_day(str(read("BILL_DEADLINE") or "18:00"), "BILL_DEADLINE", problems)
    if fetch_at and deadline and deadline <= fetch_at:
        problems.append("LEDGER_BILL_DEADLINE must be later in the day than LEDGER_BILL_FETCH_AT")
    grace = _positive(read("FINDINGS_GRACE_HOURS", float, 24.0), "FINDINGS_GRACE_HOURS", problems)
    return {"bill_fetch_at": fetch_at, "bill_deadline": deadline or time(18, 0), "findings_grace_hours": grace}


_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _time_of_day(text: str, key: str, problems: list[str]) -> time | None:
    match = _TIME_OF_DAY.match(text.strip())
    if not match:
        problems.append(f"LEDGER_{key} must be a time of day as HH:MM (China Standard Time), like 10:00")
        return None
    return time(int(match.group(1)), int(match.group(2)))


_DELAY = re.compile(r"^(\d+(?:\.\d+)?)([smh])$")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def _schedule(text: str, problems: list[str]) -> tuple[float, ...]:
    """LEDGER_QUERY_SCHEDULE: delays between queries, the first after registration (`4m,10m,1h`: units s, m,
    h); `off` for none; empty for Alipay's own retry schedule."""
    text = text.strip().lower()
    if not text:
        return DEFAULT_QUERY_SCHEDULE
    if text == "off":
        return ()
    delays = []
    for item in (part.strip() for part in text.split(",")):
        match = _DELAY.match(item)
        if not match or float(match.group(1)) <= 0:
            problems.append(f"LEDGER_QUERY_SCHEDULE: {item!r} is not a delay like 30s, 4m or 1h (or `off`)")
            return DEFAULT_QUERY_SCHEDULE
        delays.append(float(match.group(1)) * _UNITS[match.group(2)])
    return tuple(delays)


def _trusted_proxies(text: str, problems: list[str]) -> tuple[str, ...]:
    """The proxies whose X-Forwarded-For names the client, as networks (an IP is a /32 or /128); none by
    default, so that header is ignored."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            problems.append(f"LEDGER_TRUSTED_PROXIES: {item!r} is not an IP address or network (CIDR)")
    return tuple(networks)


def _projections_mode(value: str, problems: list[str]) -> bool:
    if value not in ("inline", "separate"):
        problems.append("LEDGER_PROJECTIONS must be inline (run inside ledger serve) or separate "
                        "(run by `ledger projections run`)")
    return value != "separate"


def _positive(value: Any, key: str, problems: list[str]) -> Any:
    if value is not None and not (0 < value < math.inf):  # NaN and inf fail too: every wait must end
        problems.append(f"LEDGER_{key} must be a finite number greater than zero")
    return value


def _tokens(text: str, problems: list[str]) -> dict[str, ApiToken]:
    """LEDGER_API_TOKENS: comma-separated entries `role:token`, or `role/name:token` to name the holder.

    For example `operator/alice:9f2c...,finance:41d0...`. The role is one of ROLES; the name (any printable
    text without `:` or `,`, up to 64 characters) is recorded with what the holder does ("operator alice via
    API"); whitespace around each part is ignored. A token has at least MIN_TOKEN_LENGTH characters and one
    role: a token listed twice is refused. Problems name an entry by its position, never by its token.
    """
    tokens: dict[str, tuple[int, ApiToken]] = {}
    for number, item in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        head, sep, token = item.partition(":")
        role, slash, name = (part.strip() for part in head.partition("/"))
        token, entry = token.strip(), f"LEDGER_API_TOKENS entry {number}"
        if not sep or not token or role not in ROLES:
            problems.append(f"{entry}: each entry is role:token or role/name:token, role one of {sorted(ROLES)}")
        elif slash and not (name and name.isprintable() and len(name) <= 64):
            problems.append(f"{entry} ({role}): a token's name is 1 to 64 printable characters")
        elif len(token) < MIN_TOKEN_LENGTH:
            problems.append(f"{entry} ({role}): a token needs at least {MIN_TOKEN_LENGTH} characters")
        elif token in tokens:
            first, holder = tokens[token]
            problems.append(f"{entry} ({role}) has the same token as entry {first} ({holder.role}): "
                            "a token has one role")
        else:
            tokens[token] = (number, ApiToken(role, name))
    return {token: holder for token, (_, holder) in tokens.items()}


def _apps(environ: Mapping[str, str], problems: list[str]) -> dict[str, AlipayApp]:
    """The default app (LEDGER_ALIPAY_*), plus one per name in LEDGER_ALIPAY_APPS (LEDGER_ALIPAY_<NAME>_*)."""
    apps: dict[str, AlipayApp] = {}
    names = [n.strip().upper() for n in environ.get("LEDGER_ALIPAY_APPS", "").split(",") if n.strip()]
    for name in ["", *names]:
        prefix = f"LEDGER_ALIPAY_{name}_" if name else "LEDGER_ALIPAY_"
        app = _app(environ, prefix, problems, required=bool(name), name=name)
        if app and app.app_id in apps:
            problems.append(f"{prefix}APP_ID {app.app_id} is configured twice")
        elif app:
            apps[app.app_id] = app
    return apps


def _app(environ: Mapping[str, str], prefix: str, problems: list[str], *, required: bool,
         name: str = "") -> AlipayApp | None:
    app_id = environ.get(prefix + "APP_ID", "").strip()
    key_text, key_file = environ.get(prefix + "PUBLIC_KEY", ""), environ.get(prefix + "PUBLIC_KEY_FILE", "")
    if not app_id:
        if required or key_text or key_file:
            problems.append(f"{prefix}APP_ID is required")
        return None
    before = len(problems)
    key_text = _text_or_file(environ, prefix + "PUBLIC_KEY", prefix + "PUBLIC_KEY_FILE", problems)
    if len(problems) > before:  # both given, or the file unreadable: said already
        return None
    if not key_text:
        problems.append(f"{prefix}PUBLIC_KEY or {prefix}PUBLIC_KEY_FILE is required for app {app_id}")
        return None
    try:
        keys = load_key_ring(key_text)
    except ValueError as exc:
        problems.append(f"{prefix}PUBLIC_KEY of app {app_id}: {exc}")
        return None
    private_key = _private_key(environ, prefix, app_id, problems)
    if private_key is not None and fingerprint(private_key.public_key()) in keys.fingerprints:
        problems.append(f"{prefix}PUBLIC_KEY of app {app_id} holds the app's own public key (the pair of "
                        f"{prefix}APP_PRIVATE_KEY): configure Alipay's public key (支付宝公钥) instead")
    return AlipayApp(app_id=app_id, keys=keys, seller_id=environ.get(prefix + "SELLER_ID", "").strip() or None,
                     private_key=private_key, name=name,
                     app_auth_tokens=_auth_tokens(environ.get(prefix + "APP_AUTH_TOKENS", ""), prefix, problems),
                     **_certificates(environ, prefix, app_id, keys, private_key, problems))


def _auth_tokens(text: str, prefix: str, problems: list[str]) -> dict[str, Secret]:
    """LEDGER_ALIPAY_[<NAME>_]APP_AUTH_TOKENS: `auth_app_id:app_auth_token` for each merchant a service provider
    (ISV) acts for, comma-separated. A merchant's orders are asked about with its own token only (never another
    merchant's, whose trades may carry the same out_trade_no); problems never show a token."""
    tokens: dict[str, Secret] = {}
    for number, item in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        merchant, sep, token = (part.strip() for part in item.partition(":"))
        if not (sep and merchant and token) or merchant in tokens:
            problems.append(f"{prefix}APP_AUTH_TOKENS entry {number}: each entry is auth_app_id:app_auth_token, "
                            "one per merchant")
        else:
            tokens[merchant] = Secret(token)
    return tokens


def _certificates(environ: Mapping[str, str], prefix: str, app_id: str, keys: KeyRing,
                  private_key: RSAPrivateKey | None, problems: list[str]) -> dict[str, Any]:
    """Certificate mode: an expired certificate in the key ring stops start-up; ..._ROOT_CERT (alipayRootCert.crt,
    optional) must be the root of each one's chain, and gives alipay_root_cert_sn; ..._APP_CERT (the app's
    appCertPublicKey_<APPID>.crt) gives app_cert_sn. The app's certificate configured as Alipay's is found
    only by `ledger doctor` when APP_CERT is not set too: the two look alike."""
    now, where = datetime.now(UTC), f"{prefix}PUBLIC_KEY of app {app_id}"
    values: dict[str, Any] = {}
    for key in keys.keys:
        if key.not_after is not None and key.not_after <= now:
            problems.append(f"{where}: certificate {key.subject} (SN {key.cert_sn}) expired on "
                            f"{key.not_after:%Y-%m-%d}: configure Alipay's current certificate")
    root_text = _text_or_file(environ, prefix + "ROOT_CERT", prefix + "ROOT_CERT_FILE", problems)
    if root_text:
        try:
            roots = load_certificates(root_text)
        except ValueError as exc:
            problems.append(f"{prefix}ROOT_CERT of app {app_id}: {exc}")
            roots = ()
        if roots and not any(key.certificate for key in keys.keys):
            problems.append(f"{prefix}ROOT_CERT is set but {where} holds no certificate: in certificate mode it "
                            "is Alipay's alipayCertPublicKey_RSA2.crt")
        for key in keys.keys:
            problem = chain_problem(key.certificate, roots, keys.chain, now=now) if key.certificate and roots else None
            if problem:
                problems.append(f"{where}: certificate {key.subject} (SN {key.cert_sn}) does not chain to a root "
                                f"of {prefix}ROOT_CERT: {problem}")
        values["alipay_root_cert_sn"] = root_cert_sn(roots)
    app_text = _text_or_file(environ, prefix + "APP_CERT", prefix + "APP_CERT_FILE", problems)
    if app_text:
        try:
            app_cert = AlipayKey.of(*load_app_certificate(app_text, private_key))
        except ValueError as exc:
            problems.append(f"{prefix}APP_CERT of app {app_id}: {exc}")
            return values
        if app_cert.not_after is not None and app_cert.not_after <= now:
            problems.append(f"{prefix}APP_CERT of app {app_id}: the app's certificate expired on "
                            f"{app_cert.not_after:%Y-%m-%d}: renew it in the open platform console")
        if keys.find(app_cert.fingerprint):
            problems.append(f"{where} holds the app's own certificate ({prefix}APP_CERT): configure Alipay's "
                            "alipayCertPublicKey_RSA2.crt there")
        if not root_text:
            problems.append(f"{prefix}APP_CERT needs {prefix}ROOT_CERT: in certificate mode a request carries "
                            "both app_cert_sn and alipay_root_cert_sn")
        values.update(app_cert_sn=app_cert.cert_sn, app_cert=app_cert)
    return values


def _text_or_file(environ: Mapping[str, str], key: str, file_key: str, problems: list[str]) -> str:
    """The value of `key`, or the text of the file `file_key` names; "" when neither is set (or both are)."""
    text, path = environ.get(key, ""), environ.get(file_key, "")
    if text and path:
        problems.append(f"set {key} or {file_key}, not both")
        return ""
    if not path:
        return text
    try:
        return Path(path).read_text()
    except OSError as exc:
        problems.append(f"{file_key} cannot be read: {exc.strerror}: {path}")
        return ""


def _private_key(environ: Mapping[str, str], prefix: str, app_id: str, problems: list[str]) -> RSAPrivateKey | None:
    """LEDGER_ALIPAY_[<NAME>_]APP_PRIVATE_KEY or ..._FILE: optional; without it the app asks the gateway nothing."""
    text = _text_or_file(environ, prefix + "APP_PRIVATE_KEY", prefix + "APP_PRIVATE_KEY_FILE", problems)
    if not text:
        return None
    try:
        return load_app_private_key(text)
    except ValueError as exc:  # never the key itself in the message
        problems.append(f"{prefix}APP_PRIVATE_KEY of app {app_id}: {exc}")
        return None
