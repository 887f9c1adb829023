"""QueryService on the in-memory twins (memory store, LocalOrderLock) and a scripted gateway: a step is taken
once however many workers run it, an answer is recorded as received and applied, a gateway away is recorded
and moves the schedule on. Milliseconds each (the gateway's real HTTP and signatures: the integration tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.locks.local import LocalOrderLock
from ledger.config import Settings
from ledger.domain.errors import GatewayError, NothingToDo, OrderNotFound
from ledger.domain.order import Order
from ledger.service.ports import GatewayAnswer
from ledger.service.saving import save_with_retries
from ledger.service.trade_query import QueryService
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.gateway import AppKeys
from tests.support.refs import ref

SCHEDULE = (1.0, 1.0, 1.0)


class ScriptedGateway:
    """Answers each call with the next of `replies` (a trade_status, a sub_code, or a GatewayError)."""

    def __init__(self, *replies: str | GatewayError, delay: float = 0.0) -> None:
        self.replies, self.delay, self.calls = list(replies), delay, 0
        self._lock = threading.Lock()

    def call(self, app_id: str, method: str, biz_content: Mapping[str, Any], *, merchant: str = "") -> GatewayAnswer:
        with self._lock:
            self.calls += 1
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        time.sleep(self.delay)
        if isinstance(reply, GatewayError):
            raise reply
        if reply.startswith("ACQ."):
            fields: dict[str, Any] = {"code": "40004", "msg": "Business Failed", "sub_code": reply}
        else:
            fields = {"code": "10000", "msg": "Success", "trade_status": reply, "trade_no": "2026120100001",
                      "out_trade_no": biz_content["out_trade_no"], "total_amount": "88.00",
                      "send_pay_date": "" if reply in ("WAIT_BUYER_PAY", "TRADE_CLOSED") else "2026-12-01 20:00:00"}
        return GatewayAnswer(app_id, method, '{"alipay_trade_query_response":' + repr(fields) + ',"sign":"x"}',
                             "fingerprint", fields)


@pytest.fixture
def env(alipay: SandboxAlipay, app_keys: AppKeys) -> dict[str, str]:
    """The app's settings: Alipay's key, and the app's own private key that signs its requests."""
    return {**alipay.env(), "LEDGER_DATABASE_URL": "memory://", "LEDGER_ALIPAY_APP_PRIVATE_KEY": app_keys.private_pem}


def query_service(env: dict[str, str], gateway: ScriptedGateway, *, private_key: bool = True,
                  **extra: str) -> QueryService:
    settings = Settings.from_env({key: value for key, value in {**env, **extra}.items()
                                  if private_key or key != "LEDGER_ALIPAY_APP_PRIVATE_KEY"})
    return QueryService(LedgerStore(env=persistence_env("memory://")), LocalOrderLock(wait_seconds=1.0), gateway,
                        settings.apps, schedule=SCHEDULE, lease=timedelta(minutes=2), clock=lambda: datetime.now(UTC))


def register(service: QueryService, out_trade_no: str, amount: str = "88.00") -> str:
    order = Order(app_id=APP_ID, out_trade_no=out_trade_no)
    order.register(Decimal(amount), "a book")
    service.store.save(order)
    return str(order.id)


def events(service: QueryService, order_id: str) -> list[Any]:
    return list(service.store.events.get(UUID(order_id)))


def kinds(service: QueryService, order_id: str) -> list[str]:
    return [type(e).__name__ for e in events(service, order_id)]


def test_a_step_confirms_the_payment_alipay_answers_paid(env: dict[str, str]) -> None:
    service = query_service(env, ScriptedGateway("TRADE_SUCCESS"))
    order_id = register(service, ref("Q"))
    assert service.run_step(order_id, 0) == "answered"
    assert kinds(service, order_id)[-3:] == ["QueryStepTaken", "TradeQueried", "PaymentConfirmed"]


def test_two_workers_running_one_step_ask_alipay_once(env: dict[str, str]) -> None:
    gateway = ScriptedGateway("WAIT_BUYER_PAY", delay=0.2)
    service = query_service(env, gateway)
    order_id = register(service, ref("Q"))
    results: list[str] = []
    workers = [threading.Thread(target=lambda: results.append(service.run_step(order_id, 0))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert gateway.calls == 1 and sorted(results) == ["answered", "not_due", "not_due", "not_due"]
    assert kinds(service, order_id).count("TradeQueried") == 1


def test_a_step_run_again_after_its_answer_asks_nothing(env: dict[str, str]) -> None:
    gateway = ScriptedGateway("WAIT_BUYER_PAY")
    service = query_service(env, gateway)
    order_id = register(service, ref("Q"))
    service.run_step(order_id, 0)
    assert service.run_step(order_id, 0) == "not_due" and gateway.calls == 1


def test_a_gateway_away_is_recorded_and_the_next_step_asks_again(env: dict[str, str]) -> None:
    away = GatewayError("no answer within 10 s", reason="unavailable", retryable=True)
    gateway = ScriptedGateway(away, "TRADE_SUCCESS")
    service = query_service(env, gateway)
    order_id = register(service, ref("Q"))
    assert service.run_step(order_id, 0) == "failed"
    assert service.run_step(order_id, 1) == "answered"
    assert kinds(service, order_id)[-5:] == ["QueryStepTaken", "TradeQueryFailed", "QueryStepTaken", "TradeQueried",
                                             "PaymentConfirmed"]


def test_a_badly_signed_answer_is_kept_as_evidence_and_applies_nothing(env: dict[str, str]) -> None:
    forged = GatewayError("does not verify", reason="bad_signature", retryable=False,
                          text='{"alipay_trade_query_response":{"trade_status":"TRADE_SUCCESS"},"sign":"AAAA"}')
    service = query_service(env, ScriptedGateway(forged))
    order_id = register(service, ref("Q"))
    service.run_step(order_id, 0)
    failed = events(service, order_id)[-1]
    assert type(failed).__name__ == "TradeQueryFailed" and failed.text == forged.text  # type: ignore[attr-defined]
    assert "PaymentConfirmed" not in kinds(service, order_id)


def test_the_last_step_of_an_unpaid_order_exhausts_the_schedule(env: dict[str, str]) -> None:
    service = query_service(env, ScriptedGateway("ACQ.TRADE_NOT_EXIST"))
    order_id = register(service, ref("Q"))
    for step in range(len(SCHEDULE)):
        assert service.run_step(order_id, step) == "answered"
    assert kinds(service, order_id)[-1] == "QueriesExhausted"
    assert service.run_step(order_id, len(SCHEDULE)) == "not_due"


def test_asking_now_records_an_answer_without_using_a_step(env: dict[str, str]) -> None:
    service = query_service(env, ScriptedGateway("WAIT_BUYER_PAY"))
    out_trade_no = ref("Q")
    order_id = register(service, out_trade_no)
    result = service.query_now(APP_ID, out_trade_no, who="operator alice")
    assert result.trade_status == "WAIT_BUYER_PAY" and result.status == "PENDING"
    queried = list(service.store.events.get(Order.create_id(APP_ID, out_trade_no)))[-1]
    assert (queried.source, queried.who, queried.step) == ("manual", "operator alice", None)  # type: ignore[attr-defined]
    assert service.run_step(order_id, 0) == "answered"


def test_asking_about_an_order_never_registered_nor_notified_is_not_found(env: dict[str, str]) -> None:
    service = query_service(env, ScriptedGateway("WAIT_BUYER_PAY"))
    with pytest.raises(OrderNotFound):
        service.query_now(APP_ID, ref("Q"), who="operator")


def test_an_app_without_its_private_key_cannot_ask_and_says_which_setting(env: dict[str, str]) -> None:
    gateway = ScriptedGateway("WAIT_BUYER_PAY")
    service = query_service(env, gateway, private_key=False)
    out_trade_no = ref("Q")
    register(service, out_trade_no)
    with pytest.raises(NothingToDo, match="LEDGER_ALIPAY_APP_PRIVATE_KEY"):
        service.query_now(APP_ID, out_trade_no, who="operator")
    assert gateway.calls == 0 and not service.queryable(APP_ID)


def test_a_step_of_an_order_paid_meanwhile_asks_nothing(env: dict[str, str]) -> None:
    gateway = ScriptedGateway("TRADE_SUCCESS")
    service = query_service(env, gateway)
    out_trade_no = ref("Q")
    order_id = register(service, out_trade_no)
    service.query_now(APP_ID, out_trade_no, who="merchant")
    save_with_retries(service.store, Order.create_id(APP_ID, out_trade_no), lambda order: None)
    assert service.run_step(order_id, 0) == "not_due" and gateway.calls == 1


class ReplyingGateway(ScriptedGateway):
    """Answers every call with `fields` exactly (a 10000 answer unless they say otherwise)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__("TRADE_SUCCESS")
        self.fields = fields

    def call(self, app_id: str, method: str, biz_content: Mapping[str, Any], *, merchant: str = "") -> GatewayAnswer:
        self.calls += 1
        fields = {"code": "10000", "msg": "Success", **self.fields}
        return GatewayAnswer(app_id, method, "{...}", "fingerprint", fields)


def paid_fields(out_trade_no: str, **changes: Any) -> dict[str, Any]:
    return {"trade_status": "TRADE_SUCCESS", "trade_no": "2026120100001", "out_trade_no": out_trade_no,
            "total_amount": "88.00", "send_pay_date": "2026-12-01 20:00:00", **changes}


def test_a_signed_answer_about_another_trade_is_never_applied_to_this_one(env: dict[str, str]) -> None:
    out_trade_no = ref("Q")
    service = query_service(env, ReplyingGateway(paid_fields("SOMEONE-ELSES-ORDER")))  # type: ignore[arg-type]
    order_id = register(service, out_trade_no)
    assert service.run_step(order_id, 0) == "failed"
    failed = events(service, order_id)[-1]
    assert (type(failed).__name__, failed.reason) == ("TradeQueryFailed", "mismatched")
    assert "PaymentConfirmed" not in kinds(service, order_id)


@pytest.mark.parametrize("amount", ["88.004", "-88.00", "8.8e1", "", None, 88.0])
def test_a_paid_answer_without_an_amount_in_alipays_form_is_never_a_payment(env: dict[str, str],
                                                                           amount: Any) -> None:
    out_trade_no = ref("Q")
    fields = paid_fields(out_trade_no, total_amount=amount)
    service = query_service(env, ReplyingGateway(fields))  # type: ignore[arg-type]
    order_id = register(service, out_trade_no)
    service.query_now(APP_ID, out_trade_no, who="operator")
    failed = events(service, order_id)[-1]
    assert (type(failed).__name__, failed.reason) == ("TradeQueryFailed", "unusable")
    assert "PaymentConfirmed" not in kinds(service, order_id)


def test_a_system_error_of_the_gateway_is_asked_again_not_taken_for_an_answer(env: dict[str, str]) -> None:
    service = query_service(env, ScriptedGateway("ACQ.SYSTEM_ERROR", "TRADE_SUCCESS"))
    order_id = register(service, ref("Q"))
    assert service.run_step(order_id, 0) == "failed"
    assert (events(service, order_id)[-1].reason, events(service, order_id)[-1].retryable) == ("unavailable", True)
    assert service.run_step(order_id, 1) == "answered" and "PaymentConfirmed" in kinds(service, order_id)


def test_a_merchants_token_quoted_back_in_a_refusal_is_never_recorded(env: dict[str, str]) -> None:
    merchant, token = "2088000000000101", "202612BBsecret"
    refused = GatewayError("isv.invalid-signature", reason="request_refused", retryable=False,
                           text=f'{{"sub_msg":"验签字符串为：app_auth_token={token}&amp;app_id=2021"}}')
    service = query_service(env, ScriptedGateway(refused), LEDGER_ALIPAY_APP_AUTH_TOKENS=f"{merchant}:{token}")
    order = Order(app_id=APP_ID, out_trade_no=ref("Q"), merchant=merchant)
    order.register(Decimal("88.00"), "a book")
    service.store.save(order)
    service.query_now(APP_ID, order.out_trade_no, who="operator", merchant=merchant)
    failed = events(service, str(order.id))[-1]
    assert token not in failed.text and "app_auth_token=(hidden)" in failed.text


def test_a_merchant_without_a_token_of_its_own_is_neither_scheduled_nor_asked_about(env: dict[str, str]) -> None:
    gateway = ScriptedGateway("TRADE_SUCCESS")
    service = query_service(env, gateway)
    order = Order(app_id=APP_ID, out_trade_no=ref("Q"), merchant="2088000000000202")
    order.register(Decimal("88.00"), "a book")
    service.store.save(order)
    assert not service.queryable(APP_ID, "2088000000000202") and service.queryable(APP_ID)
    assert service.run_step(str(order.id), 0) == "not_due"
    with pytest.raises(NothingToDo, match="APP_AUTH_TOKENS has no token for merchant 2088000000000202"):
        service.query_now(APP_ID, order.out_trade_no, who="operator", merchant="2088000000000202")
    assert gateway.calls == 0


def test_an_answer_recorded_by_a_commit_whose_acknowledgement_was_lost_is_recorded_once(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    service = query_service(env, ScriptedGateway("WAIT_BUYER_PAY"))
    out_trade_no = ref("Q")
    order_id = register(service, out_trade_no)
    real_save, lost = service.store.save, []

    def save_then_lose_the_answer(*objs: Any, **kwargs: Any) -> Any:
        recorded = real_save(*objs, **kwargs)
        if not lost:
            lost.append(True)
            raise IntegrityError("the library's retry of a commit that went through")
        return recorded

    monkeypatch.setattr(service.store, "save", save_then_lose_the_answer)
    service.query_now(APP_ID, out_trade_no, who="operator")
    assert kinds(service, order_id).count("TradeQueried") == 1

