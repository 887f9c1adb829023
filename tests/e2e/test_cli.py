"""The `ledger projections` commands, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from tests.support.alipay import SandboxAlipay


def ledger_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=60)


def test_projections_rebuild_replays_the_log_and_status_shows_no_lag(make_ledger: Callable[..., Ledger],
                                                                      sqlite_url: str, alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url)
    for n in range(3):
        ledger.service.record_callback(RecordCallback(alipay.body(f"CLI-{n}"), ""))
    env = {"LEDGER_DATABASE_URL": sqlite_url, **alipay.env()}
    before = ledger_cli("projections", "status", env=env)
    assert "order_status     position          0  lag 9" in before.stdout, before.stdout + before.stderr
    rebuilt = ledger_cli("projections", "rebuild", env=env)
    assert rebuilt.stdout.strip() == "replayed 9 events into fresh projection tables", rebuilt.stderr
    after = ledger_cli("projections", "status", env=env)
    assert after.stdout.count("lag 0") == 10  # the read model's ten projections
    # The dispatcher's jobs are not sent again by a rebuild: it keeps its place, and follows on from there.
    assert "dispatcher       position          0  lag 9" in after.stdout
    assert "parked streams: 0" in after.stdout
