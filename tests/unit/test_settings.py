"""Reading the `LEDGER_*` settings: defaults, every problem reported at once, and secrets kept out of sight."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from ledger.alipay.sandbox import generate_key_pair
from ledger.config import ApiToken, Settings, SettingsError
from tests.support.alipay import APP_ID, SandboxAlipay

SHOP2_APP_ID = "2021000000000002"


@pytest.fixture
def app_env(alipay: SandboxAlipay) -> dict[str, str]:
    return alipay.env()


def problems_of(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def test_defaults_are_an_embedded_sqlite_ledger_without_redis() -> None:
    settings = Settings.from_env({})
    assert str(settings.database_url) == "sqlite:///ledger.db"
    assert (settings.redis_url, settings.redis_prefix) == (None, "ledger")
    assert (settings.lock_ttl_seconds, settings.lock_wait_ms) == (300.0, 3000)
    assert (settings.require_known_orders, settings.rejected_log_size) == (False, 10_000)
    assert (dict(settings.apps), dict(settings.api_tokens)) == ({}, {})


def test_values_given_are_read_and_typed(app_env: dict[str, str]) -> None:
    settings = Settings.from_env({
        **app_env, "LEDGER_DATABASE_URL": "postgresql://ledger:pw@db:5432/ledger",
        "LEDGER_REDIS_URL": "rediss://cache:6380/1", "LEDGER_REDIS_PREFIX": "shop",
        "LEDGER_LOCK_TTL_SECONDS": "12.5", "LEDGER_LOCK_WAIT_MS": "250", "LEDGER_REQUIRE_KNOWN_ORDERS": "on",
        "LEDGER_API_TOKENS": "merchant:m-token-0123456789, operator:o-token-0123456789",
        "LEDGER_ALIPAY_SELLER_ID": " 2088000000000001 ",
    })
    assert str(settings.redis_url) == "rediss://cache:6380/1"
    assert (settings.redis_prefix, settings.lock_ttl_seconds, settings.lock_wait_ms) == ("shop", 12.5, 250)
    assert settings.require_known_orders is True
    assert settings.api_tokens == {"m-token-0123456789": ApiToken("merchant"),
                                   "o-token-0123456789": ApiToken("operator")}
    assert settings.apps[APP_ID].seller_id == "2088000000000001"


def test_serving_defaults_trust_no_proxy_and_bound_slow_clients_and_floods() -> None:
    settings = Settings.from_env({})
    assert (settings.request_read_seconds, settings.max_connections) == (10.0, 1000)
    assert (settings.refusals_per_second, settings.trusted_proxies) == (20.0, ())


def test_trusted_proxies_are_read_as_networks() -> None:
    settings = Settings.from_env({"LEDGER_TRUSTED_PROXIES": " 10.0.0.7, 172.16.0.0/12,fd00::/8 ,192.168.1.9/24"})
    assert settings.trusted_proxies == ("10.0.0.7/32", "172.16.0.0/12", "fd00::/8", "192.168.1.0/24")


def test_configured_app_without_its_public_key_is_an_error() -> None:
    message = problems_of({"LEDGER_ALIPAY_APP_ID": APP_ID})
    assert "LEDGER_ALIPAY_PUBLIC_KEY" in message and APP_ID in message


def test_public_key_that_does_not_parse_is_an_error_naming_the_variable() -> None:
    message = problems_of({"LEDGER_ALIPAY_APP_ID": APP_ID, "LEDGER_ALIPAY_PUBLIC_KEY": "not-a-key!"})
    assert "LEDGER_ALIPAY_PUBLIC_KEY" in message and "base64" in message


def test_public_key_without_an_app_id_is_an_error(app_env: dict[str, str]) -> None:
    message = problems_of({"LEDGER_ALIPAY_PUBLIC_KEY": app_env["LEDGER_ALIPAY_PUBLIC_KEY"]})
    assert "LEDGER_ALIPAY_APP_ID is required" in message


@pytest.mark.parametrize(("environ", "variable"), [
    ({"LEDGER_DATABASE_URL": "mysql://ledger:pw@db/ledger"}, "LEDGER_DATABASE_URL"),
    ({"LEDGER_DATABASE_URL": "sqlite://ledger.db"}, "LEDGER_DATABASE_URL"),
    ({"LEDGER_REDIS_URL": "http://cache:6379"}, "LEDGER_REDIS_URL"),
    ({"LEDGER_LOCK_WAIT_MS": "soon"}, "LEDGER_LOCK_WAIT_MS"),
    ({"LEDGER_LOCK_WAIT_MS": "0"}, "LEDGER_LOCK_WAIT_MS"),
    ({"LEDGER_LOCK_TTL_SECONDS": "-1"}, "LEDGER_LOCK_TTL_SECONDS"),
    ({"LEDGER_REQUIRE_KNOWN_ORDERS": "maybe"}, "LEDGER_REQUIRE_KNOWN_ORDERS"),
    ({"LEDGER_REJECTED_LOG_SIZE": "lots"}, "LEDGER_REJECTED_LOG_SIZE"),
    ({"LEDGER_API_TOKENS": "cashier:c-secret"}, "LEDGER_API_TOKENS"),
    ({"LEDGER_API_TOKENS": "merchant-secret"}, "LEDGER_API_TOKENS"),
    ({"LEDGER_API_TOKENS": "merchant:"}, "LEDGER_API_TOKENS"),
    ({"LEDGER_API_TOKENS": "merchant:x"}, "LEDGER_API_TOKENS"),
    ({"LEDGER_API_TOKENS": "operator/:o-token-0123456789"}, "LEDGER_API_TOKENS"),
    ({"LEDGER_REQUEST_READ_SECONDS": "0"}, "LEDGER_REQUEST_READ_SECONDS"),
    ({"LEDGER_MAX_CONNECTIONS": "many"}, "LEDGER_MAX_CONNECTIONS"),
    ({"LEDGER_REFUSALS_PER_SECOND": "-1"}, "LEDGER_REFUSALS_PER_SECOND"),
    ({"LEDGER_TRUSTED_PROXIES": "10.0.0.1,proxy.internal"}, "LEDGER_TRUSTED_PROXIES"),
    ({"LEDGER_TRUSTED_PROXIES": "*"}, "LEDGER_TRUSTED_PROXIES"),
], ids=["mysql-scheme", "sqlite-without-path", "redis-scheme", "wait-not-a-number", "wait-zero", "ttl-negative",
        "flag-not-on-or-off", "log-size-not-a-number", "token-unknown-role", "token-without-colon",
        "token-empty", "token-too-short", "token-name-empty", "read-deadline-zero", "connections-not-a-number",
        "refusal-rate-negative", "proxy-not-an-address", "proxy-wildcard"])
def test_malformed_value_is_an_error_naming_its_variable(environ: dict[str, str], variable: str) -> None:
    assert variable in problems_of(environ)


def test_every_problem_is_reported_in_one_error() -> None:
    message = problems_of({"LEDGER_DATABASE_URL": "mysql://db/ledger", "LEDGER_REDIS_URL": "tcp://cache",
                           "LEDGER_LOCK_WAIT_MS": "soon", "LEDGER_API_TOKENS": "cashier:c",
                           "LEDGER_ALIPAY_APP_ID": APP_ID})
    for variable in ("LEDGER_DATABASE_URL", "LEDGER_REDIS_URL", "LEDGER_LOCK_WAIT_MS", "LEDGER_API_TOKENS",
                     "LEDGER_ALIPAY_PUBLIC_KEY"):
        assert variable in message
    assert message.count("\n  - ") == 5


def test_token_secrets_never_appear_in_the_error_message() -> None:
    message = problems_of({"LEDGER_API_TOKENS": "merchant:good-secret-0123456789,cashier:leaky-secret,"
                                                 "no-colon-secret,auditor:short-secret,"
                                                 "finance:good-secret-0123456789"})
    for secret in ("good-secret", "leaky-secret", "no-colon-secret", "short-secret"):
        assert secret not in message
    assert message.count("\n  - ") == 4  # every entry but the first is wrong


def test_whitespace_around_role_name_and_token_is_ignored() -> None:
    settings = Settings.from_env({"LEDGER_API_TOKENS": " merchant : m-token-0123456789 ,"
                                                        "\toperator / alice : o-token-0123456789\n"})
    assert settings.api_tokens == {"m-token-0123456789": ApiToken("merchant"),
                                   "o-token-0123456789": ApiToken("operator", "alice")}


def test_a_token_can_be_named_for_its_holder_and_the_role_token_form_still_reads() -> None:
    settings = Settings.from_env({"LEDGER_API_TOKENS": "operator/alice:o-token-0123456789,"
                                                        "operator/张三:o-token-9876543210,"
                                                        "finance:f-token:with:colons"})
    assert {token: holder.who for token, holder in settings.api_tokens.items()} == {
        "o-token-0123456789": "operator alice", "o-token-9876543210": "operator 张三",
        "f-token:with:colons": "finance"}


def test_a_token_shorter_than_16_characters_is_refused_at_start_up() -> None:
    message = problems_of({"LEDGER_API_TOKENS": "finance:f-token-0123456789,merchant:m-token-0123"})
    assert "entry 2 (merchant)" in message and "at least 16 characters" in message
    assert "entry 1" not in message and "m-token-0123" not in message


def test_one_token_listed_under_two_roles_is_refused_at_start_up() -> None:
    message = problems_of({"LEDGER_API_TOKENS": "operator:shared-token-0123456789,auditor:shared-token-0123456789"})
    assert "entry 2 (auditor) has the same token as entry 1 (operator)" in message
    assert "shared-token" not in message


def test_secrets_never_appear_in_the_settings_repr(app_env: dict[str, str]) -> None:
    settings = Settings.from_env({**app_env,
                                  "LEDGER_API_TOKENS": "merchant:m-secret-token-0123,operator:o-secret-token-0123",
                                  "LEDGER_DATABASE_URL": "postgresql://ledger:db-password@db:5432/ledger",
                                  "LEDGER_REDIS_URL": "redis://:redis-password@cache:6379/0"})
    shown = repr(settings)
    for secret in ("m-secret-token", "o-secret-token", "db-password", "redis-password"):
        assert secret not in shown
    assert APP_ID in shown


def test_public_key_is_read_from_the_file_named(app_env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "alipay_public.txt"
    key_file.write_text(app_env["LEDGER_ALIPAY_PUBLIC_KEY"] + "\n")
    settings = Settings.from_env({"LEDGER_ALIPAY_APP_ID": APP_ID, "LEDGER_ALIPAY_PUBLIC_KEY_FILE": str(key_file)})
    expected = Settings.from_env(app_env).apps[APP_ID].keys.fingerprints
    assert settings.apps[APP_ID].keys.fingerprints == expected


def test_public_key_file_that_cannot_be_read_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    message = problems_of({"LEDGER_ALIPAY_APP_ID": APP_ID,
                           "LEDGER_ALIPAY_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")})
    assert "LEDGER_ALIPAY_PUBLIC_KEY_FILE" in message and "missing.pem" in message


def test_public_key_given_both_inline_and_as_a_file_is_an_error(app_env: dict[str, str], tmp_path: Path) -> None:
    message = problems_of({**app_env, "LEDGER_ALIPAY_PUBLIC_KEY_FILE": str(tmp_path / "key.pem")})
    assert "not both" in message


def test_further_apps_are_configured_by_name(app_env: dict[str, str]) -> None:
    settings = Settings.from_env({
        **app_env, "LEDGER_ALIPAY_APPS": "shop2", "LEDGER_ALIPAY_SHOP2_APP_ID": SHOP2_APP_ID,
        "LEDGER_ALIPAY_SHOP2_PUBLIC_KEY": app_env["LEDGER_ALIPAY_PUBLIC_KEY"],
        "LEDGER_ALIPAY_SHOP2_SELLER_ID": "2088000000000002",
    })
    assert set(settings.apps) == {APP_ID, SHOP2_APP_ID}
    assert (settings.apps[SHOP2_APP_ID].seller_id, settings.apps[APP_ID].seller_id) == ("2088000000000002", None)


def test_named_app_without_its_app_id_is_an_error(app_env: dict[str, str]) -> None:
    message = problems_of({**app_env, "LEDGER_ALIPAY_APPS": "shop2"})
    assert "LEDGER_ALIPAY_SHOP2_APP_ID is required" in message


def test_the_same_app_id_configured_twice_is_an_error(app_env: dict[str, str]) -> None:
    message = problems_of({**app_env, "LEDGER_ALIPAY_APPS": "shop2", "LEDGER_ALIPAY_SHOP2_APP_ID": APP_ID,
                           "LEDGER_ALIPAY_SHOP2_PUBLIC_KEY": app_env["LEDGER_ALIPAY_PUBLIC_KEY"]})
    assert "LEDGER_ALIPAY_SHOP2_APP_ID" in message and "twice" in message


def test_serving_requires_at_least_one_app(app_env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="LEDGER_ALIPAY_APP_ID"):
        Settings.from_env({}).require_apps()
    Settings.from_env(app_env).require_apps()


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_a_wait_or_limit_that_never_ends_or_is_not_positive_is_an_error(value: str) -> None:
    for variable in ("LEDGER_DOWNSTREAM_TIMEOUT_SECONDS", "LEDGER_LOCK_TTL_SECONDS"):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({variable: value})


def test_the_copies_recorded_per_notification_are_a_setting() -> None:
    assert Settings.from_env({}).max_copies == 20
    assert Settings.from_env({"LEDGER_MAX_COPIES": "5"}).max_copies == 5
    with pytest.raises(SettingsError, match="LEDGER_MAX_COPIES"):
        Settings.from_env({"LEDGER_MAX_COPIES": "0"})


def test_logs_are_text_without_an_access_log_by_default_and_both_are_settings() -> None:
    assert (Settings.from_env({}).log_format, Settings.from_env({}).access_log) == ("text", False)
    given = Settings.from_env({"LEDGER_LOG_FORMAT": "json", "LEDGER_ACCESS_LOG": "on"})
    assert (given.log_format, given.access_log) == ("json", True)


@pytest.mark.parametrize(("value", "variable"), [("xml", "LEDGER_LOG_FORMAT"), ("loud", "LEDGER_ACCESS_LOG")])
def test_a_log_format_or_access_log_value_not_known_is_an_error(value: str, variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_the_query_schedule_defaults_to_alipays_own_retry_schedule() -> None:
    assert Settings.from_env({}).query_schedule == (240, 600, 600, 3600, 7200, 21600, 54000)


@pytest.mark.parametrize(("text", "schedule"), [("30s,4m, 1h", (30.0, 240.0, 3600.0)), ("off", ()),
                                                ("OFF", ()), ("1.5s", (1.5,))])
def test_the_query_schedule_is_read_as_delays_with_units(text: str, schedule: tuple[float, ...]) -> None:
    assert Settings.from_env({"LEDGER_QUERY_SCHEDULE": text}).query_schedule == schedule


@pytest.mark.parametrize("text", ["4", "4d", "0s", "-1m", "4m,,1h", "soon"])
def test_a_query_schedule_that_is_not_delays_is_an_error_naming_it(text: str) -> None:
    with pytest.raises(SettingsError, match="LEDGER_QUERY_SCHEDULE"):
        Settings.from_env({"LEDGER_QUERY_SCHEDULE": text})


def test_the_apps_private_key_is_read_in_every_form_and_never_shown(app_env: dict[str, str]) -> None:
    pem, _ = generate_key_pair()
    body = "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))
    for text in (pem.decode(), body, pem.decode().replace("\n", "\\n")):
        settings = Settings.from_env({**app_env, "LEDGER_ALIPAY_APP_PRIVATE_KEY": text})
        assert settings.apps[APP_ID].private_key is not None
        assert body[10:40] not in repr(settings)


def test_a_public_key_given_as_the_apps_private_key_is_an_error_saying_so(app_env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="APP_PRIVATE_KEY of app .*this is a public key"):
        Settings.from_env({**app_env, "LEDGER_ALIPAY_APP_PRIVATE_KEY": app_env["LEDGER_ALIPAY_PUBLIC_KEY"]})


def test_several_alipay_keys_in_one_setting_make_a_ring_of_them_all(app_env: dict[str, str]) -> None:
    _, second = generate_key_pair()
    both = app_env["LEDGER_ALIPAY_PUBLIC_KEY"] + "," + second
    ring = Settings.from_env({**app_env, "LEDGER_ALIPAY_PUBLIC_KEY": both})
    assert len(ring.apps[APP_ID].keys.keys) == 2


def test_a_service_providers_tokens_are_read_per_merchant_and_never_shown(app_env: dict[str, str]) -> None:
    settings = Settings.from_env({**app_env, "LEDGER_ALIPAY_APP_AUTH_TOKENS": "2088000000000101:202612BBsecret1, "
                                                                              "2088000000000202:202612BBsecret2"})
    tokens = settings.apps[APP_ID].app_auth_tokens
    assert {merchant: str(token) for merchant, token in tokens.items()} == {
        "2088000000000101": "202612BBsecret1", "2088000000000202": "202612BBsecret2"}
    assert "202612BBsecret" not in repr(settings)


@pytest.mark.parametrize("text", ["202612BBsecret", "2088000000000101:", ":202612BBsecret",
                                  "2088000000000101:a,2088000000000101:b"])
def test_a_token_not_given_as_merchant_and_token_once_each_is_an_error_that_hides_it(
        app_env: dict[str, str], text: str) -> None:
    problems = problems_of({**app_env, "LEDGER_ALIPAY_APP_AUTH_TOKENS": text})
    assert "APP_AUTH_TOKENS entry" in problems and "202612BBsecret" not in problems


def test_the_apps_own_public_key_in_alipays_key_ring_is_refused_at_start_up(app_env: dict[str, str]) -> None:
    own_pem, own_public = generate_key_pair()
    problems = problems_of({**app_env, "LEDGER_ALIPAY_APP_PRIVATE_KEY": own_pem.decode(),
                            "LEDGER_ALIPAY_PUBLIC_KEY": app_env["LEDGER_ALIPAY_PUBLIC_KEY"] + "," + own_public})
    assert "holds the app's own public key" in problems and "支付宝公钥" in problems


def test_the_daily_bill_job_fetches_at_10_gives_up_at_18_and_open_findings_alert_after_24_hours() -> None:
    settings = Settings.from_env({})
    assert (settings.bill_fetch_at, settings.bill_deadline) == (time(10, 0), time(18, 0))
    assert settings.findings_grace_hours == 24.0


def test_the_daily_bill_jobs_times_and_the_findings_grace_are_settings() -> None:
    settings = Settings.from_env({"LEDGER_BILL_FETCH_AT": " 9:30", "LEDGER_BILL_DEADLINE": "23:59",
                                  "LEDGER_FINDINGS_GRACE_HOURS": "2.5"})
    assert (settings.bill_fetch_at, settings.bill_deadline, settings.findings_grace_hours) == (
        time(9, 30), time(23, 59), 2.5)


@pytest.mark.parametrize("text", ["off", "OFF", " Off "])
def test_the_daily_bill_job_can_be_turned_off(text: str) -> None:
    assert Settings.from_env({"LEDGER_BILL_FETCH_AT": text}).bill_fetch_at is None


@pytest.mark.parametrize(("variable", "value"), [
    ("LEDGER_BILL_FETCH_AT", "24:00"), ("LEDGER_BILL_FETCH_AT", "10"), ("LEDGER_BILL_FETCH_AT", "10:5"),
    ("LEDGER_BILL_FETCH_AT", "ten"), ("LEDGER_BILL_DEADLINE", "18:60"), ("LEDGER_BILL_DEADLINE", "off"),
    ("LEDGER_FINDINGS_GRACE_HOURS", "0"), ("LEDGER_FINDINGS_GRACE_HOURS", "-1"),
    ("LEDGER_FINDINGS_GRACE_HOURS", "nan"), ("LEDGER_FINDINGS_GRACE_HOURS", "a day"),
])
def test_a_daily_bill_time_or_grace_that_is_not_one_is_an_error_naming_it(variable: str, value: str) -> None:
    assert variable in problems_of({variable: value})


@pytest.mark.parametrize(("fetch_at", "deadline"), [("10:00", "10:00"), ("18:00", "10:00")])
def test_a_deadline_not_later_than_the_fetch_time_is_an_error(fetch_at: str, deadline: str) -> None:
    message = problems_of({"LEDGER_BILL_FETCH_AT": fetch_at, "LEDGER_BILL_DEADLINE": deadline})
    assert "LEDGER_BILL_DEADLINE must be later in the day than LEDGER_BILL_FETCH_AT" in message
