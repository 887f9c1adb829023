"""The shared PostgreSQL and Redis of the integration tests: where they are, and starting them when down."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

POSTGRES_URL = os.environ.get("LEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LEDGER_TEST_REDIS", "redis://127.0.0.1:6379/0")
# "0": never start a server found down (scripts/test-without-servers.sh points the URLs at closed ports, where
# starting one would leave a stray redis-server behind); a test that needs it then stops the run with a message.
START_SERVERS = os.environ.get("LEDGER_TEST_START_SERVERS", "1") != "0"
START_WAIT_SECONDS = 20.0
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it, so parallel runs do not collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast: tests about outages must not sit in redis-py's default retries."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 1)
    )


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def ensure_postgres(url: str = POSTGRES_URL) -> str | None:
    """None once PostgreSQL answers (started here if it was down and we can), else why it does not."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    command = None
    if shutil.which("pg_ctlcluster") and versions:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    return _ensure("PostgreSQL", url, lambda: postgres_answers(url), command)


def ensure_redis(url: str = REDIS_URL) -> str | None:
    """None once Redis answers (started here if it was down and we can), else why it does not."""
    command = None
    if shutil.which("redis-server"):
        port = str(urlsplit(url).port or 6379)
        command = [
            "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", port,
            "--save", "", "--appendonly", "no",
            "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
        ]  # fmt: skip
    return _ensure("Redis", url, lambda: redis_answers(url), command)


def _ensure(name: str, url: str, answers: Callable[[], bool], command: list[str] | None) -> str | None:
    if answers():
        return None
    where = urlsplit(url).netloc.rpartition("@")[2]
    if command is None or not START_SERVERS or urlsplit(url).hostname not in _LOCAL_HOSTS:
        return f"{name} at {where} does not answer and cannot be started from here; start it and rerun."
    try:
        ran = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        outcome = f"exit {ran.returncode}: {(ran.stderr or ran.stdout).strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        outcome = str(exc)
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        if answers():
            return None
        time.sleep(0.25)
    return (
        f"{name} at {where} does not answer; tried `{shlex.join(command)}` ({outcome}) "
        f"and waited {START_WAIT_SECONDS:.0f} s."
    )
