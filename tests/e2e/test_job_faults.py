"""Faults of the job side lose nothing and deliver nothing twice: a worker killed mid-delivery (a real
`ledger worker` on Redis; the embedded default's projections process), and a Redis restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.runtime import InProcessWorker
from ledger.bootstrap import Ledger
from ledger.service.application import RecordCallback
from tests.support.alipay import SandboxAlipay
from tests.support.deliveries import job_env, key_of
from tests.support.ledgers import kinds
from tests.support.merchant import FakeMerchant
from tests.support.robots import FakeDingTalk
from tests.support.waiting import wait_until


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"process-{len(started)}.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "ledger.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                env={"PATH": os.environ["PATH"], **env})
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def delivered_once(ledger: Ledger, merchant: FakeMerchant, order: str) -> None:
    assert merchant.wait_for(lambda: key_of(order) in merchant.keys_succeeded(), timeout=30)
    assert wait_until(lambda: "DeliverySucceeded" in kinds(ledger, order), seconds=30)
    assert Counter(kinds(ledger, order))["DeliverySucceeded"] == 1
    assert merchant.keys_succeeded() == {key_of(order)}


@pytest.mark.slow
def test_worker_killed_mid_delivery_on_redis_ends_in_exactly_one_successful_delivery(
        redis_prefix: str, processes: Callable[..., subprocess.Popen[bytes]], make_ledger: Callable[..., Ledger],
        postgres_url: str, redis_url: str, merchant: FakeMerchant, robot: FakeDingTalk,
        alipay: SandboxAlipay) -> None:
    # redis_prefix comes first so that it is cleaned up last, after the worker processes are stopped:
    # a worker still running would write its heartbeat key back.
    env = {**alipay.env(), **job_env(merchant, robot), "LEDGER_DATABASE_URL": postgres_url,
           "LEDGER_REDIS_URL": redis_url, "LEDGER_REDIS_PREFIX": redis_prefix}
    ledger = make_ledger(postgres_url, **env)
    follower = ledger.follower(poll_seconds=0.1)  # the dispatcher, as `ledger projections run` would
    follower.start()
    try:
        merchant.hang_next(60)
        first = processes(env, "worker", "--threads", "2")
        ledger.service.record_callback(RecordCallback(alipay.body("K-WORKER"), ""))
        assert merchant.wait_for(lambda: len(merchant.requests) == 1, timeout=30)
        first.send_signal(signal.SIGKILL)  # mid-delivery: the merchant has the request, no answer came back
        first.wait()
        processes(env, "worker", "--threads", "2")  # its sweep finds the attempt in flight past its lease
        delivered_once(ledger, merchant, "K-WORKER")
    finally:
        follower.stop()


@pytest.mark.slow
def test_projections_process_killed_mid_delivery_on_the_embedded_default_ends_in_one_successful_delivery(
        processes: Callable[..., subprocess.Popen[bytes]], make_ledger: Callable[..., Ledger], sqlite_url: str,
        merchant: FakeMerchant, robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
    env = {**alipay.env(), **job_env(merchant, robot), "LEDGER_DATABASE_URL": sqlite_url}
    ledger = make_ledger(sqlite_url, **env)
    merchant.hang_next(60)
    first = processes(env, "projections", "run")  # follows the log, dispatches, runs the in-memory worker
    ledger.service.record_callback(RecordCallback(alipay.body("K-EMBEDDED"), ""))
    assert merchant.wait_for(lambda: len(merchant.requests) == 1, timeout=30)
    first.send_signal(signal.SIGKILL)  # its in-memory broker, and the message, die with it
    first.wait()
    processes(env, "projections", "run")
    delivered_once(ledger, merchant, "K-EMBEDDED")


@pytest.mark.slow
def test_redis_restart_losing_a_scheduled_retry_still_ends_in_exactly_one_successful_delivery(
        make_ledger: Callable[..., Ledger], sqlite_url: str, private_redis: Any, merchant: FakeMerchant,
        robot: FakeDingTalk, alipay: SandboxAlipay) -> None:
    env = {**job_env(merchant, robot, LEDGER_RETRY_BASE_SECONDS="2"), "LEDGER_REDIS_URL": private_redis.url}
    ledger = make_ledger(sqlite_url, **env)
    follower, worker = ledger.follower(poll_seconds=0.1), InProcessWorker(ledger.broker)
    follower.start()
    worker.start()
    sweeper = None
    try:
        merchant.fail_next(1)
        ledger.service.record_callback(RecordCallback(alipay.body("K-REDIS"), ""))
        assert wait_until(lambda: "DeliveryFailed" in kinds(ledger, "K-REDIS"))
        worker.stop()  # the retry is now only a delayed message: stop its consumer, then lose Redis's memory
        private_redis.stop()
        private_redis.start()
        worker = InProcessWorker(ledger.broker)  # redis-py reconnects by itself
        worker.start()
        sweeper = ledger.background()[0]
        sweeper.start()
        delivered_once(ledger, merchant, "K-REDIS")
    finally:
        for part in (sweeper, worker, follower):
            if part is not None:
                part.stop()


def test_the_projections_process_yields_the_cpu_to_the_intake(
        processes: Callable[..., subprocess.Popen[bytes]], sqlite_url: str, alipay: SandboxAlipay) -> None:
    from ledger.adapters.sql.migrations import migrate
    from ledger.cli.processes import PROJECTIONS_NICENESS

    migrate(sqlite_url)
    follower = processes({**alipay.env(), "LEDGER_DATABASE_URL": sqlite_url}, "projections", "run")

    def niceness() -> int:
        return int(Path(f"/proc/{follower.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

    mine = os.nice(0)
    assert wait_until(lambda: follower.poll() is not None or niceness() != mine, seconds=30)
    assert follower.poll() is None
    assert niceness() == min(19, mine + PROJECTIONS_NICENESS)
