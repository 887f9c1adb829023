"""End to end over HTTP: notifications in, orders, history and refused callbacks out, with bearer-token roles."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from urllib.parse import unquote_to_bytes

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.10 asks for httpx2 and warns when it falls back to httpx, the client the project installs.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from api.app import create_app
from ledger.alipay.sandbox import encode_form
from ledger.bootstrap import Ledger
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.refs import ref

TOKEN_OF = {role: f"{role[0]}-token-0123456789" for role in ("merchant", "auditor", "finance", "operator")}
TOKENS = ",".join(f"{role}:{token}" for role, token in TOKEN_OF.items())
FORM = {"content-type": "application/x-www-form-urlencoded"}
MAX_BODY = 64 * 1024


def as_role(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN_OF[role]}"}


def is_json_error(response) -> bool:  # type: ignore[no-untyped-def]
    return (response.headers["content-type"].startswith("application/json")
            and set(response.json()) == {"error", "detail"})


@pytest.fixture
def client_for(make_ledger: Callable[..., Ledger], sqlite_url: str) -> Iterator[Callable[..., TestClient]]:
    """Factory: a client of an app over a fresh SQLite ledger built with these LEDGER_* settings."""
    clients: list[TestClient] = []

    def make(*, raise_server_exceptions: bool = True, **env: str) -> TestClient:
        ledger = make_ledger(sqlite_url, LEDGER_API_TOKENS=TOKENS, **env)
        app = create_app(ledger, close_on_shutdown=False)
        clients.append(TestClient(app, raise_server_exceptions=raise_server_exceptions).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_for: Callable[..., TestClient]) -> TestClient:
    return client_for()


def notify(client: TestClient, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/api/alipay/notify", content=body, headers={**FORM, **headers})


def register(client: TestClient, out_trade_no: str, total_amount: object = "88.00", **fields: object):  # type: ignore[no-untyped-def]
    payload = {"out_trade_no": out_trade_no, "total_amount": total_amount, "subject": "a book", **fields}
    return client.post("/api/orders", json=payload, headers=as_role("merchant"))


def order(client: TestClient, out_trade_no: str) -> dict[str, object]:
    """The order's row in the read model, once the projections have caught up with the log."""
    client.app.state.ledger.runner.catch_up()  # type: ignore[attr-defined]
    response = client.get(f"/api/orders/{out_trade_no}", headers=as_role("finance"))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# -- notify --------------------------------------------------------------------------------------------


def test_signed_notification_is_answered_with_plain_success(client: TestClient, alipay: SandboxAlipay) -> None:
    response = notify(client, alipay.body(ref()))
    assert (response.status_code, response.text) == (200, "success")
    assert response.headers["content-type"].startswith("text/plain")


def test_notification_with_one_tampered_field_is_answered_fail(client: TestClient, alipay: SandboxAlipay) -> None:
    forged = alipay.body(ref()).replace(b"total_amount=88.00", b"total_amount=0.01")
    response = notify(client, forged)
    assert (response.status_code, response.text) == (400, "fail")
    assert response.headers["content-type"].startswith("text/plain")


def test_empty_notification_is_answered_fail(client: TestClient) -> None:
    response = notify(client, b"")
    assert (response.status_code, response.text) == (400, "fail")


def test_notification_over_64_kib_with_content_length_is_refused_as_too_large(
        client: TestClient, alipay: SandboxAlipay) -> None:
    body = alipay.body(ref(), passback_params="x" * MAX_BODY)
    response = notify(client, body)
    assert (response.status_code, response.text) == (413, "fail")


def test_notification_of_exactly_64_kib_is_read_and_judged_not_refused_for_size(client: TestClient) -> None:
    response = notify(client, b"x=" + b"y" * (MAX_BODY - 2))
    assert (response.status_code, response.text) == (400, "fail")


def test_streamed_notification_over_64_kib_without_content_length_is_refused_as_too_large(
        client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(9):
            yield b"x" * 8192

    response = client.post("/api/alipay/notify", content=chunks(), headers=FORM)
    assert (response.status_code, response.text) == (413, "fail")
    assert "content-length" not in response.request.headers


def test_gbk_notification_with_a_chinese_subject_is_answered_success(
        client: TestClient, alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    body = alipay.body(out_trade_no, charset="gbk", subject="中文商品：书")
    assert "中文商品：书".encode("gbk") in unquote_to_bytes(body)
    response = notify(client, body)
    assert (response.status_code, response.text) == (200, "success")
    assert order(client, out_trade_no)["status"] == "PAID"


def test_strict_mode_answers_retry_later_for_an_unregistered_order(
        client_for: Callable[..., TestClient], alipay: SandboxAlipay) -> None:
    client = client_for(LEDGER_REQUIRE_KNOWN_ORDERS="on")
    response = notify(client, alipay.body(ref()))
    assert (response.status_code, response.text) == (503, "fail")
    assert response.headers["retry-after"] == "60"


def test_notify_needs_no_token_and_ignores_one(client: TestClient, alipay: SandboxAlipay) -> None:
    assert notify(client, alipay.body(ref())).text == "success"
    assert notify(client, alipay.body(ref()), authorization="Bearer nonsense").text == "success"


# -- auth matrix ---------------------------------------------------------------------------------------

ENDPOINTS = {
    "register": ("POST", "/api/orders", {"merchant"}),
    "show": ("GET", "/api/orders/{no}", {"merchant", "finance", "auditor", "operator"}),
    "history": ("GET", "/api/orders/{no}/history", {"auditor", "operator"}),
    "rejected": ("GET", "/api/rejected-callbacks", {"operator"}),
}


def call(client: TestClient, endpoint: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    method, path, _ = ENDPOINTS[endpoint]
    url = path.format(no=ref())
    if method == "POST":
        return client.post(url, json={"out_trade_no": ref(), "total_amount": "88.00"}, headers=headers)
    return client.get(url, headers=headers)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong-token"},
                                     {"authorization": f"Basic {TOKEN_OF['merchant']}"}, {"authorization": "Bearer "}],
                         ids=["no-token", "wrong-token", "other-scheme", "empty-bearer"])
def test_protected_endpoint_without_a_valid_token_answers_401_with_a_bearer_challenge(
        client: TestClient, endpoint: str, headers: dict[str, str]) -> None:
    response = call(client, endpoint, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert is_json_error(response)


MATRIX = [(endpoint, role, role in allowed) for endpoint, (_, _, allowed) in ENDPOINTS.items()
          for role in sorted(TOKEN_OF)]


@pytest.mark.parametrize(("endpoint", "role", "allowed"), MATRIX,
                         ids=[f"{e}-{r}-{'allowed' if a else 'forbidden'}" for e, r, a in MATRIX])
def test_protected_endpoint_lets_in_only_its_roles(client: TestClient, endpoint: str, role: str,
                                                   allowed: bool) -> None:
    response = call(client, endpoint, as_role(role))
    if allowed:
        # A fresh order number: registering creates it, reading it finds nothing.
        expected = {"register": 201, "show": 404, "history": 404, "rejected": 200}[endpoint]
        assert response.status_code == expected, response.text
    else:
        assert response.status_code == 403
        assert is_json_error(response)
        assert "www-authenticate" not in response.headers


# -- POST /api/orders ----------------------------------------------------------------------------------


def test_registering_an_order_answers_201_with_the_pending_order(client: TestClient) -> None:
    out_trade_no = ref()
    response = register(client, out_trade_no)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["out_trade_no"], body["app_id"], body["status"]) == (out_trade_no, APP_ID, "PENDING")
    assert (body["registered"], body["registered_amount"], body["subject"]) == (True, "88.00", "a book")
    assert (body["paid_amount"], body["amount_mismatch"], body["callbacks"]) == (None, False, 0)


def test_registering_the_same_order_again_with_the_same_details_answers_200(client: TestClient) -> None:
    out_trade_no = ref()
    first = register(client, out_trade_no)
    again = register(client, out_trade_no)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()


def test_registering_the_same_order_with_another_amount_answers_409(client: TestClient) -> None:
    out_trade_no = ref()
    register(client, out_trade_no)
    response = register(client, out_trade_no, "99.00")
    assert response.status_code == 409
    assert is_json_error(response)
    assert response.json()["error"] == "order_conflict"
    assert order(client, out_trade_no)["registered_amount"] == "88.00"


def test_amount_given_as_a_json_number_is_refused_with_a_clear_message(client: TestClient) -> None:
    out_trade_no = ref()
    response = register(client, out_trade_no, 88.0)
    assert response.status_code == 400
    assert is_json_error(response)
    assert "total_amount" in response.json()["detail"] and "float" in response.json()["detail"]
    assert client.get(f"/api/orders/{out_trade_no}", headers=as_role("finance")).status_code == 404


@pytest.mark.parametrize(("payload", "reason"), [
    ({"total_amount": "88.00"}, "invalid_request"), ({"out_trade_no": "", "total_amount": "88.00"}, "missing_field"),
    ({"out_trade_no": "x" * 65, "total_amount": "88.00"}, "too_long"), (["not", "an", "object"], "invalid_request"),
], ids=["missing", "empty", "too-long", "array"])
def test_registration_without_a_valid_out_trade_no_is_refused_with_the_reason(client: TestClient, payload: object,
                                                                              reason: str) -> None:
    response = client.post("/api/orders", json=payload, headers=as_role("merchant"))
    assert response.status_code == 400
    assert is_json_error(response)
    assert response.json()["error"] == reason


@pytest.mark.parametrize("amount", ["abc", "88.001", "-1.00"])
def test_registration_with_a_malformed_amount_is_refused(client: TestClient, amount: str) -> None:
    response = register(client, ref(), amount)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_amount"


def test_registration_with_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/api/orders", content=b"{out_trade_no: ", headers={
        **as_role("merchant"), "content-type": "application/json"})
    assert response.status_code == 400
    assert is_json_error(response)
    assert "JSON" in response.json()["detail"]


def test_registration_for_an_app_that_is_not_configured_is_refused(client: TestClient) -> None:
    response = register(client, ref(), app_id="2021999999999999")
    assert response.status_code == 400
    assert APP_ID in response.json()["detail"]


def test_notification_of_another_amount_than_registered_is_flagged_and_leaves_the_order_pending(
        client: TestClient, alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    register(client, out_trade_no)
    assert notify(client, alipay.body(out_trade_no, total_amount="0.01")).text == "success"
    shown = order(client, out_trade_no)
    assert (shown["amount_mismatch"], shown["status"], shown["paid_amount"]) == (True, "PENDING", None)


def test_registering_after_the_payment_arrived_answers_201_and_keeps_it_paid(
        client: TestClient, alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    notify(client, alipay.body(out_trade_no))
    response = register(client, out_trade_no)
    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["registered"]) == ("PAID", True)


# -- GET /api/orders/{no} ------------------------------------------------------------------------------


def test_paid_order_shows_status_amount_trade_number_and_callbacks(client: TestClient,
                                                                   alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    params = alipay.params(out_trade_no)
    body = alipay.body(out_trade_no, notify_id=params["notify_id"])
    notify(client, body)
    notify(client, body)
    shown = order(client, out_trade_no)
    assert (shown["status"], shown["paid_amount"], shown["receipt_amount"]) == ("PAID", "88.00", "88.00")
    assert (shown["trade_no"], shown["callback_count"], shown["last_version"]) == (params["trade_no"], 2, 4)
    assert shown["registered"] is False


def test_unknown_order_answers_404_as_json(client: TestClient) -> None:
    response = client.get(f"/api/orders/{ref()}", headers=as_role("merchant"))
    assert response.status_code == 404
    assert is_json_error(response)


# -- GET /api/orders/{no}/history ----------------------------------------------------------------------


def test_history_lists_every_event_in_order_with_the_callback_exactly_as_sent(
        client: TestClient, alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    params = alipay.params(out_trade_no, subject="书 with a trailing space ")
    notify(client, encode_form(params))
    response = client.get(f"/api/orders/{out_trade_no}/history", headers=as_role("auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["out_trade_no"], body["app_id"], "as_of" in body) == (out_trade_no, APP_ID, False)
    events = body["events"]
    assert [(e["version"], e["type"]) for e in events] == [(1, "Opened"), (2, "CallbackReceived"),
                                                           (3, "PaymentConfirmed")]
    assert all(e["recorded_at"] for e in events)
    callback = events[1]["data"]
    assert callback["params"] == params
    assert (callback["params"]["sign"], callback["params"]["sign_type"]) == (params["sign"], "RSA2")
    assert callback["notify_id"] == params["notify_id"]
    assert events[2]["data"]["total_amount"] == "88.00"


def test_history_as_of_a_version_adds_the_order_as_it_was_then(client: TestClient,
                                                                 alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    notify(client, alipay.body(out_trade_no))
    notify(client, alipay.body(out_trade_no, trade_status="TRADE_FINISHED"))
    url = f"/api/orders/{out_trade_no}/history"
    body = client.get(url, params={"as_of_version": "3"}, headers=as_role("operator")).json()
    assert [e["type"] for e in body["events"]][-1] == "TradeFinished"
    assert (body["as_of"]["version"], body["as_of"]["status"]) == (3, "PAID")
    assert order(client, out_trade_no)["status"] == "FINISHED"


@pytest.mark.parametrize("version", ["abc", "-1", ""])
def test_history_as_of_a_version_that_is_not_a_number_is_refused(client: TestClient, alipay: SandboxAlipay,
                                                                  version: str) -> None:
    out_trade_no = ref()
    notify(client, alipay.body(out_trade_no))
    response = client.get(f"/api/orders/{out_trade_no}/history", params={"as_of_version": version},
                          headers=as_role("auditor"))
    assert response.status_code == 400
    assert is_json_error(response)
    assert "as_of_version" in response.json()["detail"]


# -- GET /api/rejected-callbacks -----------------------------------------------------------------------


def test_operator_sees_the_forged_notification_as_a_bad_signature(client: TestClient,
                                                                  alipay: SandboxAlipay) -> None:
    out_trade_no = ref()
    notify(client, alipay.body(out_trade_no).replace(b"total_amount=88.00", b"total_amount=0.01"))
    response = client.get("/api/rejected-callbacks", headers=as_role("operator"))
    assert response.status_code == 200
    latest = response.json()["rejected"][0]
    assert latest["reason"] == "bad_signature"
    assert out_trade_no in latest["body"] and "total_amount=0.01" in latest["body"]
    assert latest["remote_addr"] == "invalid"  # the test client's peer is "testclient", no IP address


def test_rejected_callbacks_are_limited_to_the_newest(client: TestClient, alipay: SandboxAlipay) -> None:
    for _ in range(3):
        notify(client, b"")
    response = client.get("/api/rejected-callbacks", params={"limit": "2"}, headers=as_role("operator"))
    assert [r["reason"] for r in response.json()["rejected"]] == ["malformed", "malformed"]


def test_rejected_callbacks_with_a_limit_that_is_not_a_number_is_refused_as_json(
        client_for: Callable[..., TestClient]) -> None:
    client = client_for(raise_server_exceptions=False)
    response = client.get("/api/rejected-callbacks", params={"limit": "abc"}, headers=as_role("operator"))
    assert response.status_code == 400
    assert is_json_error(response)


# -- health --------------------------------------------------------------------------------------------


def test_liveness_answers_ok_with_the_local_lock(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["lock"]["backend"]) == ("ok", "local")


def test_readiness_answers_ready_with_the_database_and_the_local_lock(client: TestClient,
                                                                      alipay: SandboxAlipay) -> None:
    notify(client, alipay.body(ref()))
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]["ok"], body["lock"]["backend"]) == ("ready", True, "local")
    assert body["database"]["head"] >= 3


# -- errors are JSON -----------------------------------------------------------------------------------


def test_unknown_path_and_wrong_method_answer_json_not_html(client: TestClient) -> None:
    missing = client.get("/nowhere")
    wrong_method = client.delete("/api/orders", headers=as_role("merchant"))
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert is_json_error(missing) and is_json_error(wrong_method)
    assert "<html" not in missing.text.lower()
