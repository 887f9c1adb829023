"""Real `ledger serve` processes: concurrent copies of one notification, across processes sharing
PostgreSQL and Redis, and on the embedded default; and the README's demonstration."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.ledgers import kinds
from tests.support.refs import ref
from tests.support.server import FINANCE_TOKEN, OPERATOR_TOKEN, LedgerServer
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., LedgerServer]]:
    started: list[LedgerServer] = []

    def start(env: dict[str, str], *args: str) -> LedgerServer:
        server = LedgerServer(env, tmp_path / f"server-{len(started)}.log", *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def shared_env(postgres_url: str, redis_url: str, redis_prefix: str, alipay: SandboxAlipay) -> dict[str, str]:
    """What every serving process of a deployment on PostgreSQL and Redis is started with."""
    return {**alipay.env(), "LEDGER_DATABASE_URL": postgres_url, "LEDGER_REDIS_URL": redis_url,
            "LEDGER_REDIS_PREFIX": redis_prefix, "LEDGER_MAX_COPIES": "100",
            "LEDGER_API_TOKENS": f"finance:{FINANCE_TOKEN}"}


def post_concurrently(targets: list[LedgerServer], body: bytes, copies_each: int) -> list[tuple[int, str]]:
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(len(targets) * copies_each)

    def post(server: LedgerServer) -> None:
        start.wait()
        answers.append(server.notify(body))

    threads = [threading.Thread(target=post, args=(s,)) for s in targets for _ in range(copies_each)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.slow
def test_two_server_processes_receiving_copies_at_once_confirm_payment_exactly_once(
        servers: Callable[..., LedgerServer], make_ledger: Callable[..., Ledger], postgres_url: str,
        shared_env: dict[str, str], alipay: SandboxAlipay) -> None:
    first, second = servers(shared_env), servers(shared_env)  # both migrate at start-up, concurrently
    first.wait_ready()
    second.wait_ready()
    order = ref("E")
    answers = post_concurrently([first, second], alipay.body(order), copies_each=25)
    assert Counter(answers) == {(200, "success"): 50}
    counts = Counter(kinds(make_ledger(postgres_url, migrate_first=False), order))
    assert counts["PaymentConfirmed"] == 1
    assert counts["CallbackReceived"] == 50  # every `success` matched by one recorded callback
    # Both processes run the projections; between them each event is applied once.
    row = first.read_order(order, until=lambda row: row["callback_count"] == 50)
    assert (row["status"], row["paid_amount"], row["callback_count"]) == ("PAID", "88.00", 50)


@pytest.mark.slow
def test_one_server_with_two_worker_processes_confirms_copies_once_and_records_every_callback(
        servers: Callable[..., LedgerServer], make_ledger: Callable[..., Ledger], postgres_url: str,
        shared_env: dict[str, str], alipay: SandboxAlipay) -> None:
    server = servers(shared_env, "--workers", "2")
    server.wait_ready()
    workers = [pid for pid in children(server.process.pid) if b"spawn_main" in cmdline(pid)]
    assert len(workers) == 2
    order = ref("W")
    # Fresh connections each: the kernel spreads them over both processes, so copies meet across them.
    answers = post_concurrently([server], alipay.body(order), copies_each=40)
    assert Counter(answers) == {(200, "success"): 40}
    counts = Counter(kinds(make_ledger(postgres_url, migrate_first=False), order))
    assert (counts["PaymentConfirmed"], counts["CallbackReceived"]) == (1, 40)
    # The projections run once, beside the workers.
    row = server.read_order(order, until=lambda row: row["callback_count"] == 40)
    assert (row["status"], row["paid_amount"]) == ("PAID", "88.00")


@pytest.mark.slow
def test_a_server_killed_mid_load_had_recorded_every_callback_it_answered_success(
        servers: Callable[..., LedgerServer], make_ledger: Callable[..., Ledger], postgres_url: str,
        shared_env: dict[str, str], alipay: SandboxAlipay) -> None:
    # `success` goes out only after the commit that holds the callback: whatever moment the process dies at,
    # an order answered `success` is in the log (the others Alipay sends again).
    server = servers({**shared_env, "LEDGER_PROJECTIONS": "separate"})  # no child process left behind
    server.wait_ready()
    orders = [ref("K") for _ in range(400)]
    answers: dict[str, object] = {}
    counting, eighty_succeeded = threading.Lock(), threading.Event()

    def post(chunk: list[str]) -> None:
        for order in chunk:
            try:
                answer: object = server.notify(alipay.body(order))
            except OSError as exc:  # the server died under this request, or before it
                answer = exc
            with counting:
                answers[order] = answer
                if sum(a == (200, "success") for a in answers.values()) >= 80:
                    eighty_succeeded.set()

    threads = [threading.Thread(target=post, args=(orders[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    # Killed once 80 answers were `success` (any other answer, a 503 say, is not one the claim is about).
    assert eighty_succeeded.wait(60), f"80 successes did not come: {Counter(map(str, answers.values()))}"
    server.process.kill()
    for t in threads:
        t.join()
    succeeded = [order for order, answer in answers.items() if answer == (200, "success")]
    assert 80 <= len(succeeded) < len(orders)
    ledger = make_ledger(postgres_url, migrate_first=False)
    assert [order for order in succeeded if "CallbackReceived" not in kinds(ledger, order)] == []


def test_workers_on_the_embedded_default_are_refused_before_serving(tmp_path: Path, alipay: SandboxAlipay) -> None:
    env = {"PATH": os.environ["PATH"], **alipay.env(), "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "serve", "--port", "0", "--workers", "2"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "--workers above 1 needs PostgreSQL" in done.stderr
    assert not (tmp_path / "ledger.db").exists()


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(child) for child in found.split()]


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.slow
def test_embedded_default_server_confirms_fifty_concurrent_copies_once(
        servers: Callable[..., LedgerServer], make_ledger: Callable[..., Ledger], sqlite_url: str,
        alipay: SandboxAlipay) -> None:
    server = servers({**alipay.env(), "LEDGER_DATABASE_URL": sqlite_url, "LEDGER_MAX_COPIES": "100"})
    server.wait_ready()
    order = ref("E")
    answers = post_concurrently([server], alipay.body(order), copies_each=50)
    assert Counter(answers) == {(200, "success"): 50}
    counts = Counter(kinds(make_ledger(sqlite_url, migrate_first=False), order))
    assert (counts["PaymentConfirmed"], counts["CallbackReceived"]) == (1, 50)


@pytest.mark.slow
def test_readme_demo_shows_a_simulated_notification_accepted_and_its_history(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_EXIT": "1", "PORT": str(free_port()),
           "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db"}
    env.pop("LEDGER_ALIPAY_PUBLIC_KEY_FILE", None)
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("HTTP 200 success") == 2
    assert "PaymentConfirmed" in done.stdout and "duplicate: True" in done.stdout


@pytest.mark.slow
def test_serve_restarts_its_projections_process_when_it_dies_and_the_read_model_catches_up(
        servers: Callable[..., LedgerServer], sqlite_url: str, alipay: SandboxAlipay) -> None:
    import json
    import signal
    import urllib.request

    server = servers({**alipay.env(), "LEDGER_DATABASE_URL": sqlite_url,
                      "LEDGER_API_TOKENS": f"finance:{FINANCE_TOKEN},operator:{OPERATOR_TOKEN}"})
    server.wait_ready()

    def follower() -> dict[str, object]:
        request = urllib.request.Request(server.url + "/api/projections",
                                         headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["follower"]  # type: ignore[no-any-return]

    first = follower()
    assert first["kind"] == "process" and first["running"] is True
    os.kill(int(first["pid"]), signal.SIGKILL)
    assert server.notify(alipay.body("RESTART-1")) == (200, "success")
    row = server.read_order("RESTART-1", until=lambda row: row["status"] == "PAID")
    assert row["callback_count"] == 1
    again = follower()
    assert again["restarts"] == 1 and again["pid"] != first["pid"]
