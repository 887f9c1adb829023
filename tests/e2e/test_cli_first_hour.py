"""The `ledger` command as a newcomer meets it: help for every option, one line for a database that is not
there, logs that say only what the level asks for, and `simulate` against a server that is down."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ledger.cli.main import HelpFormatter, build_parser
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.server import LedgerServer
from tests.support.services import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ledger_cli(*args: str, env: dict[str, str], cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: run from another folder, the command still finds this checkout's packages.
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT), **env}, timeout=60)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_and_argument_of_every_subcommand_has_help_and_shows_its_default() -> None:
    found = subcommands()
    assert {"serve", "migrate", "worker", "projections", "history", "audit", "manual-queue", "keygen",
            "simulate"} <= set(found)
    for name, parser in found.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"ledger {name} {action.dest} has no help"
            if action.default not in (None, "") and not isinstance(action.default, bool):
                shown = HelpFormatter(name)._get_help_string(action)
                assert shown is not None and "%(default)s" in shown, f"ledger {name} {action.dest} hides its default"


def test_help_shows_defaults() -> None:
    done = ledger_cli("serve", "--help", env={})
    assert "(default: 8000)" in done.stdout and "(default: info)" in done.stdout


@pytest.mark.parametrize("command", [["history", "ANY"], ["manual-queue", "list"], ["projections", "status"],
                                     ["audit", "verify"]])
def test_a_command_on_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(
        command: list[str], tmp_path: Path, alipay: SandboxAlipay) -> None:
    done = ledger_cli(*command, env=alipay.env(), cwd=tmp_path)  # the default: sqlite:///ledger.db, here
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "no SQLite database at" in done.stderr, done.stderr
    assert str(tmp_path / "ledger.db") in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_migrate_creates_the_sqlite_file_and_logs_nothing_at_the_default_level(tmp_path: Path) -> None:
    done = ledger_cli("migrate", env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ledger.db").exists()
    assert done.stderr == ""  # alembic's INFO lines are for --log-level debug
    assert done.stdout == "database is up to date\n"


def test_log_level_debug_shows_the_migrations_and_json_logs_are_one_object_a_line(tmp_path: Path) -> None:
    done = ledger_cli("migrate", "--log-level", "debug", env={"LEDGER_LOG_FORMAT": "json"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(e["logger"].startswith("alembic") and "Running upgrade" in e["message"] for e in entries)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_a_bad_log_format_is_a_clean_exit_2(tmp_path: Path) -> None:
    done = ledger_cli("migrate", env={"LEDGER_LOG_FORMAT": "xml"}, cwd=tmp_path)
    assert done.returncode == 2 and "LEDGER_LOG_FORMAT" in done.stderr and "Traceback" not in done.stderr


def test_serve_with_a_malformed_public_key_exits_before_serving_with_a_clear_message(tmp_path: Path) -> None:
    env = {"LEDGER_ALIPAY_APP_ID": APP_ID, "LEDGER_ALIPAY_PUBLIC_KEY": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A-broken",
           "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}
    done = ledger_cli("serve", "--port", "0", env=env)
    assert done.returncode == 2, done.stderr
    assert "LEDGER_ALIPAY_PUBLIC_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["migrate"], ["history", "ANY"]])
def test_an_unreachable_postgresql_is_one_line_and_exit_2(command: list[str], alipay: SandboxAlipay) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/ledger"  # nobody listens there
    done = ledger_cli(*command, env={"LEDGER_DATABASE_URL": url, **alipay.env()})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot connect to PostgreSQL at 127.0.0.1" in done.stderr, done.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["migrate"], ["manual-queue", "list"]])
def test_a_postgresql_database_that_does_not_exist_is_one_line_and_exit_2(
        command: list[str], postgres_url: str, alipay: SandboxAlipay) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/ledger_no_such_database"
    done = ledger_cli(*command, env={"LEDGER_DATABASE_URL": missing, **alipay.env()})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and 'database "ledger_no_such_database" does not exist' in done.stderr


def test_simulate_against_a_server_that_is_down_says_so_in_one_line(tmp_path: Path, alipay: SandboxAlipay) -> None:
    assert ledger_cli("keygen", "--dir", str(tmp_path), env={}).returncode == 0
    done = ledger_cli("simulate", "--url", f"http://127.0.0.1:{free_port()}/api/alipay/notify", "--private-key",
                      str(tmp_path / "alipay_private.pem"), "--app-id", alipay.app_id, env={})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot reach" in done.stderr and "refused" in done.stderr, done.stderr


@pytest.mark.parametrize("access_log", ["on", "off"])
def test_the_access_log_is_a_setting(access_log: str, tmp_path: Path, alipay: SandboxAlipay) -> None:
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", "LEDGER_ACCESS_LOG": access_log,
           "PYTHONPATH": str(PROJECT_ROOT), **alipay.env()}
    server = LedgerServer(env, tmp_path / "serve.log", "--log-level", "info")
    try:
        server.wait_ready()
        with urllib.request.urlopen(server.url + "/healthz?first-hour", timeout=5):
            pass
    finally:
        server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert ("GET /healthz?first-hour" in log) == (access_log == "on"), log
    assert "alembic" not in log  # migrations are quiet at info, in the server and in its projections process
