"""Over HTTP: a flood of forged notifications from one address is answered `fail` without filling the
rejected log or the log, while a genuine notification from that address is still recorded; and what is
stored as the sender is always an IP address."""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from api.app import create_app
from ledger.bootstrap import Ledger
from tests.support.alipay import SandboxAlipay
from tests.support.refs import ref

OPERATOR_TOKEN = "o-token-0123456789"
FORM = {"content-type": "application/x-www-form-urlencoded"}
FORGER = "203.0.113.66"


@pytest.fixture
def client_from(make_ledger: Callable[..., Ledger], sqlite_url: str) -> Iterator[Callable[..., TestClient]]:
    """Factory: a client whose requests come from `address`, of an app over a fresh SQLite ledger."""
    clients: list[TestClient] = []
    ledgers: dict[str, Ledger] = {}

    def make(address: str, **env: str) -> TestClient:
        if not ledgers:
            ledgers["only"] = make_ledger(sqlite_url, LEDGER_API_TOKENS=f"operator:{OPERATOR_TOKEN}", **env)
        app = create_app(ledgers["only"], close_on_shutdown=False)
        clients.append(TestClient(app, client=(address, 50000)).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def notify(client: TestClient, body: bytes):  # type: ignore[no-untyped-def]
    return client.post("/api/alipay/notify", content=body, headers=FORM)


def rejected(client: TestClient) -> list[dict[str, object]]:
    response = client.get("/api/rejected-callbacks", params={"limit": "1000"},
                          headers={"authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert response.status_code == 200, response.text
    return response.json()["rejected"]  # type: ignore[no-any-return]


def test_a_flood_of_forgeries_from_one_address_is_throttled_and_its_genuine_notification_still_succeeds(
        client_from: Callable[..., TestClient], alipay: SandboxAlipay, caplog: pytest.LogCaptureFixture) -> None:
    client = client_from(FORGER, LEDGER_REFUSALS_PER_SECOND="5")
    forgery = alipay.body(ref()).replace(b"total_amount=88.00", b"total_amount=0.01")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ledger.service.application"):
        answers = Counter((r.status_code, r.text) for r in (notify(client, forgery) for _ in range(60)))
    elapsed = time.monotonic() - started
    most_admitted = 5 + int(5 * elapsed) + 1  # the burst, then 5 a second
    assert set(answers) <= {(400, "fail"), (429, "fail")}
    assert answers[(400, "fail")] <= most_admitted and answers[(429, "fail")] >= 60 - most_admitted
    # Only the admitted ones cost a row and a line.
    assert len(rejected(client)) == answers[(400, "fail")]
    assert sum("refused notification from" in m for m in caplog.messages) == answers[(400, "fail")]
    assert all(row["remote_addr"] == FORGER for row in rejected(client))
    genuine = notify(client, alipay.body(ref()))  # at once, its source's bucket still empty
    assert (genuine.status_code, genuine.text) == (200, "success")


def test_another_addresss_forgeries_are_refused_in_full_during_the_flood(
        client_from: Callable[..., TestClient], alipay: SandboxAlipay) -> None:
    flooder = client_from(FORGER, LEDGER_REFUSALS_PER_SECOND="5")
    forgery = alipay.body(ref()).replace(b"total_amount=88.00", b"total_amount=0.01")
    assert Counter(notify(flooder, forgery).status_code for _ in range(30))[429] > 0
    other = client_from("198.51.100.7")
    assert notify(other, forgery).status_code == 400


@pytest.mark.parametrize(("peer", "stored"), [
    ("198.51.100.7", "198.51.100.7"), ("2001:DB8::0:1", "2001:db8::1"), ("::ffff:198.51.100.7", "198.51.100.7"),
    ("testclient", "invalid"), ("x" * 100, "invalid"), ("", "invalid"),
], ids=["ipv4", "ipv6-normalised", "ipv4-mapped", "a-name", "over-64-characters", "empty"])
def test_the_stored_sender_of_a_refused_notification_is_a_valid_ip_or_the_invalid_marker(
        client_from: Callable[..., TestClient], peer: str, stored: str) -> None:
    client = client_from(peer)
    assert notify(client, b"not=signed").status_code == 400
    assert [row["remote_addr"] for row in rejected(client)] == [stored]
