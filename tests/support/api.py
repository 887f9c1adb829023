"""The HTTP API under test on either backend: tokens for every role, a client per test, answers read as JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from ledger.bootstrap import Ledger
from tests.support.alipay import APP_ID, SandboxAlipay

TOKEN_OF = {role: f"{role[0]}-token-0123456789" for role in ("merchant", "auditor", "finance", "operator")}
TOKENS = ",".join(f"{role}:{token}" for role, token in TOKEN_OF.items())
FORM = {"content-type": "application/x-www-form-urlencoded"}


def as_role(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN_OF[role]}"}


def is_json_error(response: Any, status: int, error: str | None = None) -> bool:
    """The answer has this status and the API's JSON error body (with this `error`, if given)."""
    return (response.status_code == status and response.headers["content-type"].startswith("application/json")
            and set(response.json()) == {"error", "detail"} and error in (None, response.json()["error"]))


def register(client: TestClient, out_trade_no: str, total_amount: str = "88.00", subject: str = "a book") -> Any:
    payload = {"out_trade_no": out_trade_no, "total_amount": total_amount, "subject": subject}
    return client.post("/api/orders", json=payload, headers=as_role("merchant"))


def notify(client: TestClient, alipay: SandboxAlipay, out_trade_no: str) -> None:
    """Alipay's notification that the order is paid, answered success."""
    assert client.post("/api/alipay/notify", content=alipay.body(out_trade_no), headers=FORM).text == "success"


def history(client: TestClient, path: str, **params: str) -> Any:
    return client.get(f"/api/orders/{path}/history", params=params, headers=as_role("auditor"))


def nothing_recorded(ledger: Ledger, out_trade_no: str) -> bool:
    """No event of the order in the log, and so none in the read model either."""
    assert ledger.runner is not None
    ledger.runner.catch_up()
    return (ledger.service.history(APP_ID, out_trade_no) == []
            and ledger.service.get_order(APP_ID, out_trade_no) is None)


class ApiContract:
    """A ledger and a client of its API on the backend a subclass names by its `database_url` fixture."""

    @pytest.fixture
    def database_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], database_url: str) -> Ledger:
        return make_ledger(database_url, LEDGER_API_TOKENS=TOKENS)

    @pytest.fixture
    def client(self, ledger: Ledger) -> Iterator[TestClient]:
        # Server errors are answered, not raised: these tests are about what the client is told.
        with TestClient(create_app(ledger, close_on_shutdown=False), raise_server_exceptions=False) as client:
            yield client
