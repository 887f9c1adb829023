"""Auditors re-verify Alipay's signature on every recorded callback: an altered record is found."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from ledger.service.audit import recorded_callbacks_that_fail
from tests.support.alipay import SandboxAlipay

CHECKED = "checked {} recorded callbacks, messages and trade-query answers: {} failed verification"

TAMPER = {
    "sqlite": "update stored_events set state = cast(replace(cast(state as text), :old, :new) as blob)"
              " where topic like '%CallbackReceived'",
    "postgresql": "update ledger_events set state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new),"
                  " 'UTF8') where topic like '%CallbackReceived'",
}


def record_three(ledger: Ledger, alipay: SandboxAlipay) -> None:
    for n, amount in enumerate(["10.00", "20.00", "30.00"]):
        ledger.service.record_callback(RecordCallback(alipay.body(f"AUDIT-{n}", total_amount=amount), ""))


def alter_amount(ledger: Ledger, old: str, new: str) -> None:
    with ledger.engine.begin() as conn:
        changed = conn.execute(sa.text(TAMPER[conn.dialect.name]),
                               {"old": f'"total_amount":"{old}"', "new": f'"total_amount":"{new}"'})
        assert changed.rowcount >= 1


# Its URL fixture is fetched by name, which the conftest cannot see: the PostgreSQL case is marked by hand.
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_stored_callback_altered_after_recording_fails_verification(
        backend: str, request: pytest.FixtureRequest, make_ledger: Callable[..., Ledger],
        alipay: SandboxAlipay) -> None:
    ledger = make_ledger(request.getfixturevalue(f"{backend}_url"))
    record_three(ledger, alipay)
    counted: list[int] = []
    assert list(recorded_callbacks_that_fail(ledger.store, ledger.settings.apps, counted=counted)) == []
    alter_amount(ledger, "20.00", "2.00")
    counted.clear()
    findings = list(recorded_callbacks_that_fail(ledger.store, ledger.settings.apps, counted=counted))
    assert [f.out_trade_no for f in findings] == ["AUDIT-1"] and counted == [3]


def test_ledger_audit_verify_exits_1_and_names_the_altered_order(make_ledger: Callable[..., Ledger],
                                                                  sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url)
    record_three(ledger, alipay)
    env = {"PATH": os.environ["PATH"], "LEDGER_DATABASE_URL": sqlite_url, **alipay.env()}
    command = [sys.executable, "-m", "ledger.cli", "audit", "verify"]
    clean = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert (clean.returncode, clean.stdout.strip()) == (0, CHECKED.format(3, 0))
    alter_amount(ledger, "30.00", "3.00")
    altered = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert altered.returncode == 1
    assert "order AUDIT-2" in altered.stdout and "1 failed verification" in altered.stdout
