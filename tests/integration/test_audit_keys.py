"""`ledger audit verify` after a key change: each callback is verified with the key recorded as verifying it,
configured or given with --key; one whose key is neither is a finding that says so."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from ledger.adapters.sql.migrations import migrate
from ledger.alipay.keyring import AlipayKey, fingerprint, load_key_ring
from ledger.alipay.sandbox import encode_form, sign_params, trade_notification
from ledger.bootstrap import Ledger, build
from ledger.config import Settings
from ledger.service.application import RecordCallback
from ledger.service.audit import Finding, recorded_callbacks_that_fail
from tests.support.alipay import SandboxAlipay
from tests.support.certs import CertifiedAlipay

CHECKED = "checked {} recorded callbacks, messages and trade-query answers: {} failed verification"

TAMPER = {
    "sqlite": "update stored_events set state = cast(replace(cast(state as text), :old, :new) as blob)"
              " where topic like '%CallbackReceived'",
    "postgresql": "update ledger_events set state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new),"
                  " 'UTF8') where topic like '%CallbackReceived'",
}


@pytest.fixture(scope="module")
def new_alipay() -> SandboxAlipay:
    return SandboxAlipay.new()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def fp(alipay: SandboxAlipay) -> str:
    return fingerprint(alipay.private_key.public_key())


def spki_pem(alipay: SandboxAlipay) -> str:
    return alipay.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def record_during_a_key_change(make_ledger: Callable[..., Ledger], url: str, old: SandboxAlipay,
                               new: SandboxAlipay) -> None:
    """OLD-1 verified by the old key, NEW-1 by the new one, both configured."""
    ledger = make_ledger(url, LEDGER_ALIPAY_PUBLIC_KEY=f"{old.public_key_b64},{new.public_key_b64}")
    ledger.service.record_callback(RecordCallback(old.body("OLD-1", total_amount="10.00"), ""))
    ledger.service.record_callback(RecordCallback(new.body("NEW-1", total_amount="20.00"), ""))


def after_the_old_key_is_retired(url: str, new: SandboxAlipay) -> Ledger:
    """The same log, the ring now holding only the new key."""
    return build(Settings.from_env({**new.env(), "LEDGER_DATABASE_URL": url}))


def audit(ledger: Ledger, given: list[AlipayKey] | None = None) -> tuple[list[Finding], int]:
    counted: list[int] = []
    findings = list(recorded_callbacks_that_fail(ledger.store, ledger.settings.apps, counted=counted,
                                                 given=given or []))
    return findings, counted[0]


def alter(ledger: Ledger, old: str, new: str) -> None:
    assert ledger.engine is not None
    with ledger.engine.begin() as conn:
        assert conn.execute(sa.text(TAMPER[conn.dialect.name]), {"old": old, "new": new}).rowcount >= 1


def test_after_the_old_key_is_removed_its_callbacks_verify_only_with_the_old_key_given(
        make_ledger: Callable[..., Ledger], database_url: str, alipay: SandboxAlipay,
        new_alipay: SandboxAlipay) -> None:
    record_during_a_key_change(make_ledger, database_url, alipay, new_alipay)
    ledger = after_the_old_key_is_retired(database_url, new_alipay)
    try:
        findings, checked = audit(ledger)
        assert checked == 2
        [finding] = findings
        assert finding.out_trade_no == "OLD-1"
        on = finding.problem.removeprefix("verified on ").partition(" by key")[0]
        assert finding.problem == (f"verified on {on} by key {fp(alipay)}, which is neither configured nor given "
                                   "with --key")
        assert on.endswith(" UTC") and len(on) == len("2026-12-01 12:00:00 UTC")
        assert audit(ledger, list(load_key_ring(alipay.public_key_b64).keys)) == ([], 2)
    finally:
        ledger.close()


def test_a_callback_altered_after_recording_fails_with_the_retired_key_given(
        make_ledger: Callable[..., Ledger], database_url: str, alipay: SandboxAlipay,
        new_alipay: SandboxAlipay) -> None:
    record_during_a_key_change(make_ledger, database_url, alipay, new_alipay)
    ledger = after_the_old_key_is_retired(database_url, new_alipay)
    try:
        alter(ledger, '"total_amount":"10.00"', '"total_amount":"1.00"')
        [finding] = audit(ledger, list(load_key_ring(alipay.public_key_b64).keys))[0]
        assert finding.out_trade_no == "OLD-1"
        assert finding.problem.startswith("altered: signature does not verify")
        assert f"(key {fp(alipay)}, which verified it on " in finding.problem
    finally:
        ledger.close()


def test_a_callback_recorded_before_keys_were_named_is_verified_with_every_key_known(
        make_ledger: Callable[..., Ledger], database_url: str, alipay: SandboxAlipay,
        new_alipay: SandboxAlipay) -> None:
    record_during_a_key_change(make_ledger, database_url, alipay, new_alipay)
    ledger = after_the_old_key_is_retired(database_url, new_alipay)
    try:
        for signer in (alipay, new_alipay):  # as recorded before the key was: `key` empty
            alter(ledger, f'"key":"{fp(signer)}"', '"key":""')
        [finding] = audit(ledger)[0]  # NEW-1 verifies with the configured key; OLD-1 with none known
        assert finding.out_trade_no == "OLD-1"
        assert finding.problem.startswith("signature does not verify with the app's Alipay public key, nor with any "
                                          "key given with --key: recorded on ")
        assert audit(ledger, list(load_key_ring(alipay.public_key_b64).keys)) == ([], 2)
    finally:
        ledger.close()


def ledger_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=60)


def test_ledger_audit_verify_names_the_callback_and_the_key_until_the_retired_key_is_given_with_key(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay, new_alipay: SandboxAlipay,
        tmp_path: Path) -> None:
    record_during_a_key_change(make_ledger, sqlite_url, alipay, new_alipay)
    env = {**new_alipay.env(), "LEDGER_DATABASE_URL": sqlite_url}
    without = ledger_cli("audit", "verify", env=env)
    assert without.returncode == 1, without.stderr
    [line] = [line for line in without.stdout.splitlines() if line.startswith("FAILED")]
    assert "order OLD-1" in line and f"by key {fp(alipay)}, which is neither configured nor given with --key" in line
    assert without.stdout.splitlines()[-1] == CHECKED.format(2, 1)
    (tmp_path / "old.pem").write_text(spki_pem(alipay))
    (tmp_path / "unrelated.txt").write_text(SandboxAlipay.new().public_key_b64)
    given = ledger_cli("audit", "verify", "--key", str(tmp_path / "unrelated.txt"), "--key", str(tmp_path / "old.pem"),
                       env=env)
    assert (given.returncode, given.stdout.strip()) == (0, CHECKED.format(2, 0))


def test_ledger_audit_verify_refuses_a_key_file_it_cannot_read_or_that_holds_no_key(
        sqlite_url: str, alipay: SandboxAlipay, tmp_path: Path) -> None:
    migrate(sqlite_url)
    env = {**alipay.env(), "LEDGER_DATABASE_URL": sqlite_url}
    missing = ledger_cli("audit", "verify", "--key", str(tmp_path / "missing.pem"), env=env)
    assert missing.returncode == 2
    assert f"--key {tmp_path / 'missing.pem'} cannot be read: No such file or directory" in missing.stderr
    (tmp_path / "private.pem").write_bytes(
        alipay.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    private = ledger_cli("audit", "verify", "--key", str(tmp_path / "private.pem"), env=env)
    assert private.returncode == 2
    assert f"--key {tmp_path / 'private.pem'}: this is a private key; configure Alipay's public key" in private.stderr


def test_a_retired_certificate_kept_by_the_auditor_verifies_its_callbacks(
        make_ledger: Callable[..., Ledger], sqlite_url: str, new_alipay: SandboxAlipay, tmp_path: Path) -> None:
    old = CertifiedAlipay.new()
    ledger = make_ledger(sqlite_url, LEDGER_ALIPAY_PUBLIC_KEY=old.public_cert_file() + spki_pem(new_alipay))
    body = encode_form(sign_params(trade_notification(new_alipay.app_id, "CERT-1"), old.private_key))
    ledger.service.record_callback(RecordCallback(body, ""))
    env = {**new_alipay.env(), "LEDGER_DATABASE_URL": sqlite_url}
    assert ledger_cli("audit", "verify", env=env).returncode == 1
    (tmp_path / "alipayCertPublicKey_RSA2.crt").write_text(old.public_cert_file())
    kept = ledger_cli("audit", "verify", "--key", str(tmp_path / "alipayCertPublicKey_RSA2.crt"), env=env)
    assert (kept.returncode, kept.stdout.strip()) == (0, CHECKED.format(1, 0))
