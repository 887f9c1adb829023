"""Fixtures shared by the whole suite: the real PostgreSQL and Redis, a private Redis, a cuttable TCP proxy.

Only tests that ask for a server (by fixture or by marker) make the session check for it, and start it if it
is down; unit tests run without any server.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import Ledger, build
from ledger.config import Settings
from tests.support.alipay import SandboxAlipay
from tests.support.gateway import AppKeys, StandIn, serving
from tests.support.isolation import create_database, delete_keys, drop_database, forget_migrated, migrated
from tests.support.merchant import SECRET as MERCHANT_SECRET
from tests.support.merchant import FakeMerchant
from tests.support.private_redis import PrivateRedis
from tests.support.proxy import TcpProxy
from tests.support.robots import ROBOT_SECRET, FakeDingTalk
from tests.support.services import POSTGRES_URL, REDIS_URL, ensure_postgres, ensure_redis
from tests.support.serving_loop import ServingLoop

# Which servers a fixture needs, as a marker name, so `-m "not postgres"` deselects their tests.
_SERVER_FIXTURES = {
    "postgres_url": "postgres",
    "redis_url": "redis",
    "redis_prefix": "redis",
    "private_redis": "slow",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & _SERVER_FIXTURES.keys():
            item.add_marker(_SERVER_FIXTURES[fixture])


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    needed = {marker.name for item in session.items for marker in item.iter_markers()}
    for server, ensure in (("postgres", ensure_postgres), ("redis", ensure_redis)):
        if server in needed and (problem := ensure()):
            pytest.exit(problem, returncode=3)


def _require_marker(request: pytest.FixtureRequest, marker: str) -> None:
    # A fixture fetched by `request.getfixturevalue` is not among the test's fixture names, so the hook above
    # could not mark the test: it would run under `-m "not <marker>"`, against a server that may not be there.
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(f"{request.node.nodeid} reaches the {marker} server without the `{marker}` mark: mark it "
                    f"(e.g. pytest.param(..., marks=pytest.mark.{marker})) or ask for the fixture by name",
                    pytrace=False)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh, empty database of this test's own; dropped afterwards."""
    _require_marker(request, "postgres")
    name, url = create_database(POSTGRES_URL)
    try:
        yield url
    finally:
        drop_database(name, POSTGRES_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """URL of the shared Redis: use it only with `redis_prefix`, which cleans up after the test."""
    _require_marker(request, "redis")
    return REDIS_URL


_USED_PREFIXES: list[str] = []


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; every key under it is deleted afterwards,
    and again when the session ends (a process stopped after this test may still have written one)."""
    prefix = f"ledger-test-{uuid.uuid4().hex[:12]}"
    _USED_PREFIXES.append(prefix)
    try:
        yield prefix
    finally:
        delete_keys(redis_url, prefix)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for prefix in _USED_PREFIXES:
        delete_keys(REDIS_URL, prefix)
    forget_migrated()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, running (`.url`, `.port`, `.stop()`, `.start()`); killed after."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path, binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str, int], TcpProxy]]:
    """Factory: `tcp_proxy(host, port)` gives a proxy to cut and restore; every proxy is closed afterwards."""
    proxies: list[TcpProxy] = []

    def start(host: str, port: int) -> TcpProxy:
        proxies.append(TcpProxy(host, port))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def merchant() -> Iterator[FakeMerchant]:
    """A local HTTP server standing in for the merchant's order system; checks every signature."""
    with FakeMerchant(MERCHANT_SECRET) as fake:
        yield fake


@pytest.fixture
def robot() -> Iterator[FakeDingTalk]:
    """A local DingTalk robot that checks the signature and the 20-a-minute limit."""
    with FakeDingTalk(ROBOT_SECRET) as fake:
        yield fake


@pytest.fixture(scope="session")
def alipay() -> SandboxAlipay:
    """The session's sandbox Alipay: signs notifications; `.env()` configures the ledger to trust it."""
    return SandboxAlipay.new()


@pytest.fixture(scope="session")
def app_keys() -> AppKeys:
    """The session's merchant app key pair: its private key signs requests to the (stand-in) gateway."""
    return AppKeys.new()


@pytest.fixture
def alipay_gateway(alipay: SandboxAlipay, app_keys: AppKeys) -> Iterator[StandIn]:
    """The stand-in for Alipay's gateway on a free local port, knowing the app by `app_keys`, signing its
    answers with `alipay`'s key (tests/support/gateway.py)."""
    with serving(alipay, app_keys) as stand_in:
        yield stand_in


@pytest.fixture
def make_ledger(alipay: SandboxAlipay) -> Iterator[Callable[..., Ledger]]:
    """Build a ledger from LEDGER_* settings (plus overrides for `build`); closed after the test."""
    built: list[Ledger] = []

    def make(database_url: str, *, migrate_first: bool = True, overrides: dict[str, Any] | None = None,
             **env: str) -> Ledger:
        settings = Settings.from_env({**alipay.env(), "LEDGER_DATABASE_URL": database_url,
                                      "LEDGER_LOCK_WAIT_MS": "10000", **env})
        if migrate_first:
            migrated(database_url)
        ledger = build(settings, **(overrides or {}))
        built.append(ledger)
        return ledger

    yield make
    for ledger in built:
        ledger.close()


@pytest.fixture
def serving_loop(make_ledger: Callable[..., Ledger]) -> Iterator[ServingLoop]:
    """An event loop standing in for the server's (`.submit(service, cmd)`, `.record_callback(...)`); the
    group commits it ran are stopped, as on shutdown, before their ledgers are closed."""
    loop = ServingLoop()
    try:
        yield loop
    finally:
        loop.close()
