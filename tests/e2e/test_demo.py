"""scripts/demo.sh as a newcomer runs it: a port of their choosing, and tokens made for them and shown."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ledger.config import Settings
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKENS_FILE = ROOT / ".sandbox" / "tokens.env"


def repository_state() -> set[str]:
    """Every file git sees, tracked or not, ignored or not, except the sandbox's (git-ignored) folder."""
    listed = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return {line for line in listed if not line[3:].startswith((".sandbox/", ".pytest_cache/", ".mypy_cache/",
                                                                ".ruff_cache/")) and "__pycache__" not in line}


@pytest.mark.slow
def test_the_demo_serves_on_the_port_given_makes_tokens_once_and_shows_curl_lines_using_them(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    env.update({"DEMO_EXIT": "1", "PORT": "1", "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db"})
    before = repository_state()
    done = subprocess.run(["bash", "scripts/demo.sh", "--port", str(port)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert repository_state() == before  # nothing left behind but .sandbox/

    lines = dict(line.split("=", 1) for line in TOKENS_FILE.read_text().splitlines())
    assert set(lines) == {"MERCHANT_TOKEN", "OPERATOR_TOKEN", "FINANCE_TOKEN", "AUDITOR_TOKEN"}
    tokens = Settings.from_env({"LEDGER_API_TOKENS": ",".join(
        f"{name.split('_')[0].lower()}/demo:{token}" for name, token in lines.items())}).api_tokens
    assert sorted(holder.role for holder in tokens.values()) == ["auditor", "finance", "merchant", "operator"]
    assert all(len(token) >= 16 for token in tokens)
    for token in lines.values():
        assert token in done.stdout
    curls = [line for line in done.stdout.splitlines() if line.startswith("curl ")]
    assert len(curls) == 4 and all(f"http://127.0.0.1:{port}/api/" in line for line in curls)
    assert {"$MERCHANT_TOKEN", "$AUDITOR_TOKEN", "$FINANCE_TOKEN", "$OPERATOR_TOKEN"} == {
        re.search(r"\$[A-Z]+_TOKEN", line).group() for line in curls}  # type: ignore[union-attr]
    # The first curl line's request, made with the merchant's token: the server took the tokens it was shown.
    assert '"status": "PAID"' in done.stdout, done.stdout
    # `ledger doctor` proved the demo's configuration, the stand-in gateway and the notify URL included.
    assert "every check passed" in done.stdout and "FAIL" not in done.stdout, done.stdout
    assert "ok   app 2021000000000001 gateway" in done.stdout and "ok   notify URL" in done.stdout
    # The settings it served with, for `ledger` in a second shell: the tour sources them and reaches the same ledger.
    sourced = subprocess.run(["bash", "-c", "source .sandbox/demo.env && env -0"], cwd=ROOT, env={"PATH": env["PATH"]},
                             capture_output=True, text=True, check=True).stdout
    settings = dict(item.split("=", 1) for item in sourced.split("\0") if item.startswith("LEDGER_"))
    assert settings["LEDGER_DATABASE_URL"] == f"sqlite:///{tmp_path}/demo.db"
    assert settings["LEDGER_ALIPAY_GATEWAY_URL"] == f"http://127.0.0.1:{port + 10}/gateway.do"
    assert Settings.from_env(settings).api_tokens == tokens
    assert (ROOT / ".sandbox" / "demo.env").stat().st_mode & 0o077 == 0  # its tokens: for this user's eyes only
    order = re.search(r"DEMO-\d+", done.stdout).group()  # type: ignore[union-attr]
    history = subprocess.run(["bash", "-c", f"source .sandbox/demo.env && .venv/bin/ledger history {order}"],
                             cwd=ROOT, env={"PATH": env["PATH"]}, capture_output=True, text=True, timeout=60)
    assert history.returncode == 0 and "PaymentConfirmed" in history.stdout, history.stdout + history.stderr

    again = subprocess.run(["bash", "scripts/demo.sh", "--port", str(free_port())], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert dict(line.split("=", 1) for line in TOKENS_FILE.read_text().splitlines()) == lines  # made once


def test_the_demo_refuses_a_port_that_is_not_a_number() -> None:
    done = subprocess.run(["bash", "scripts/demo.sh", "--port", "eighty"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "--port needs a number" in done.stderr
