"""`ledger doctor` run as a merchant's engineer would, against the stand-in gateway: it passes on a good
configuration and catches, one line each with the fix, the app's own public key configured as Alipay's, a
private key the gateway does not know, a database not made, a notify URL with a query string or not this ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.adapters.sql.migrations import migrate
from tests.support.alipay import SandboxAlipay
from tests.support.gateway import AppKeys, StandIn
from tests.support.server import LedgerServer


def doctor(env: dict[str, str]) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "doctor"], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=60)
    return done.returncode, (done.stdout + done.stderr).splitlines()


@pytest.fixture
def env(alipay: SandboxAlipay, alipay_gateway: StandIn, tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    migrate(url)
    return {**alipay.env(), **alipay_gateway.env(), "LEDGER_DATABASE_URL": url}


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


@pytest.mark.slow
def test_a_good_configuration_passes_every_check(env: dict[str, str]) -> None:
    code, lines = doctor(env)
    assert code == 0, lines
    assert lines[-1] == "every check passed" and failures(lines) == []
    assert any("gateway: the gateway accepted the app's signature" in line for line in lines)
    assert any(line.startswith("ok   clock") for line in lines)


@pytest.mark.slow
def test_the_apps_own_public_key_configured_as_alipays_is_caught_with_the_fix(
        env: dict[str, str], app_keys: AppKeys) -> None:
    # Beside the app's private key: start-up itself refuses it, doctor included (exit 2, the fix named).
    code, lines = doctor({**env, "LEDGER_ALIPAY_PUBLIC_KEY": app_keys.public_b64})
    assert code == 2 and any("holds the app's own public key" in line and "支付宝公钥" in line for line in lines)


@pytest.mark.slow
def test_a_key_that_is_not_alipays_is_caught_by_the_gateways_signed_answer(env: dict[str, str]) -> None:
    # Another app's public key, say, pasted by mistake: only Alipay's signed answer can tell.
    code, lines = doctor({**env, "LEDGER_ALIPAY_PUBLIC_KEY": AppKeys.new().public_b64})
    assert code == 1
    [failed] = failures(lines)
    assert "gateway" in failed and "app's own public key" in failed and "支付宝公钥" in failed


@pytest.mark.slow
def test_a_private_key_the_gateway_does_not_know_is_caught(env: dict[str, str]) -> None:
    code, lines = doctor({**env, "LEDGER_ALIPAY_APP_PRIVATE_KEY": AppKeys.new().private_pem})
    assert code == 1
    [failed] = failures(lines)
    assert "isv.invalid-signature" in failed and "app private key does not match" in failed


@pytest.mark.slow
def test_an_app_without_a_private_key_is_skipped_not_proved(env: dict[str, str]) -> None:
    code, lines = doctor({k: v for k, v in env.items() if k != "LEDGER_ALIPAY_APP_PRIVATE_KEY"})
    assert code == 0
    assert any(line.startswith("skip") and "APP_PRIVATE_KEY" in line for line in lines)


@pytest.mark.slow
def test_a_database_not_made_is_caught(env: dict[str, str], tmp_path: Path) -> None:
    code, lines = doctor({**env, "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/missing.db"})
    assert code == 1 and [line.split(":")[0] for line in failures(lines)] == ["FAIL database"]


@pytest.mark.slow
def test_the_notify_url_must_reach_this_ledger_without_a_query_string(
        env: dict[str, str], alipay_gateway: StandIn, tmp_path: Path) -> None:
    server = LedgerServer(env, tmp_path / "serve.log")
    try:
        server.wait_ready()
        notify_url = server.url + "/api/alipay/notify"
        assert doctor({**env, "LEDGER_PUBLIC_NOTIFY_URL": notify_url})[0] == 0
        code, lines = doctor({**env, "LEDGER_PUBLIC_NOTIFY_URL": notify_url + "?shop=1"})
        assert code == 1 and "query string" in failures(lines)[0]
        code, lines = doctor({**env, "LEDGER_PUBLIC_NOTIFY_URL": alipay_gateway.url})  # not a ledger
        assert code == 1 and "does not reach this ledger" in failures(lines)[0]
    finally:
        server.stop()
