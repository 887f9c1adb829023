"""Alipay's message service without any server: what a message says (ledger.domain.message), a deposit-back
applied to its order once, any other message recorded in a stream of its own, and the service's routing,
refusals and answers on the in-memory twins."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from api.floods import floods_count
from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.locks.local import LocalOrderLock
from ledger.adapters.metrics import Metrics
from ledger.adapters.refusals.rejections import MemoryRejectionLog
from ledger.alipay.sandbox import deposit_back_message, encode_form, message_notification, sign_params
from ledger.config import Settings
from ledger.domain.errors import EncryptedMessage, InvalidRequest, SignatureInvalid, Unbookable
from ledger.domain.message import DEPOSIT_BACK, AppMessage, MessageNotice, is_message
from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order
from ledger.intake.io import StoreIO
from ledger.intake.loop import GroupCommit
from ledger.service.application import LedgerService, RecordCallback
from ledger.service.ports import RecordedMessage
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.notices import notification
from tests.support.refs import ref

UNKNOWN = "alipay.fund.trans.order.changed"


def message(msg_method: str = DEPOSIT_BACK, **biz: Any) -> dict[str, str]:
    """An unsigned message as a domain test needs it (biz_content from `biz`)."""
    return message_notification(APP_ID, msg_method, biz)


def deposit_back(out_trade_no: str = "T1", out_request_no: str = "R1", **fields: str) -> dict[str, str]:
    return deposit_back_message(APP_ID, out_trade_no, out_request_no, **fields)


def paid_order() -> Order:
    order = Order(app_id=APP_ID, out_trade_no="T1")
    params = notification("T1")
    order.receive(TradeNotice.from_params(params), params, delivery_id="d", received_at=datetime.now(UTC),
                  remote_addr="198.51.100.7")
    return order


def tell(order: Order, params: dict[str, str], *, max_copies: int = 20) -> list[str]:
    """Deliver one message to the order; the names of the events it appended."""
    order.collect_events()
    order.receive_message(MessageNotice.from_params(params), params, delivery_id=uuid.uuid4().hex,
                          received_at=datetime.now(UTC), remote_addr="198.51.100.7", max_copies=max_copies)
    return [type(e).__name__ for e in order.collect_events()]


# -- what a message says ---------------------------------------------------------------------------------


def test_a_message_is_told_from_a_trade_notification_by_msg_method_and_biz_content() -> None:
    assert is_message(deposit_back())
    assert not is_message(notification("T1"))
    assert not is_message({**deposit_back(), "trade_status": "TRADE_SUCCESS"})
    assert not is_message({k: v for k, v in deposit_back().items() if k != "biz_content"})


def test_a_deposit_back_reads_the_refund_its_status_amount_and_bank_times() -> None:
    params = deposit_back("T1", "R7", dback_amount="12.30")
    back = MessageNotice.from_params(params).deposit_back
    biz = json.loads(params["biz_content"])
    assert back is not None and (back.out_request_no, back.dback_status, back.dback_amount) == ("R7", "S",
                                                                                                 Decimal("12.30"))
    assert (back.bank_ack_time, back.trade_no) == (biz["bank_ack_time"], biz["trade_no"])


def test_an_amount_sent_as_a_json_number_is_read_exactly_never_through_float() -> None:
    params = message_notification(APP_ID, DEPOSIT_BACK, '{"out_trade_no":"T1","out_request_no":"R1",'
                                                        '"dback_status":"S","dback_amount":0.30}')
    back = MessageNotice.from_params(params).deposit_back
    assert back is not None and back.dback_amount == Decimal("0.30")


def test_a_deposit_back_to_the_buyers_balance_has_no_amount() -> None:
    back = MessageNotice.from_params(deposit_back(dback_status="F")).deposit_back
    assert back is not None and (back.dback_status, back.dback_amount) == ("F", None)


@pytest.mark.parametrize("biz", [
    {"out_trade_no": "T1", "out_request_no": "R1", "dback_status": "X"},
    {"out_trade_no": "T1", "out_request_no": "R1", "dback_status": "S"},  # S without its amount
    {"out_trade_no": "T1", "out_request_no": "R1", "dback_status": "S", "dback_amount": "1e3"},
    {"out_trade_no": "T1", "dback_status": "F"},
    {"out_trade_no": "T1", "out_request_no": "R1", "dback_status": "F", "bank_ack_time": "yesterday"},
], ids=["unknown status", "no amount", "not an amount", "no out_request_no", "bad time"])
def test_a_deposit_back_the_ledger_cannot_read_is_unusable(biz: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        MessageNotice.from_params(message(**biz))


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"text"', "[" * 100_000])
def test_biz_content_that_is_not_a_json_object_is_unusable(text: str) -> None:
    with pytest.raises(InvalidRequest):
        MessageNotice.from_params(message_notification(APP_ID, UNKNOWN, text))


@pytest.mark.parametrize("named", ["T" * 65, "T\n1", ["T1"], None, ""])
def test_an_out_trade_no_no_order_of_the_ledger_could_have_names_no_order(named: object) -> None:
    notice = MessageNotice.from_params(message(out_trade_no=named, out_request_no="R1", dback_status="F"))
    assert (notice.out_trade_no, notice.concerns_order) == ("", False)


def test_only_a_message_the_ledger_knows_concerns_the_order_it_names() -> None:
    assert MessageNotice.from_params(deposit_back("T1")).concerns_order
    assert not MessageNotice.from_params(message(UNKNOWN, out_trade_no="T1")).concerns_order


def test_a_service_providers_message_is_for_the_merchant_msg_app_id_or_the_legacy_auth_app_id_names() -> None:
    assert MessageNotice.from_params({**deposit_back(), "msg_app_id": "2021000000000101"}).merchant == \
        "2021000000000101"
    assert MessageNotice.from_params({**deposit_back(), "auth_app_id": "2021000000000202"}).merchant == \
        "2021000000000202"
    assert MessageNotice.from_params({**deposit_back(), "msg_app_id": APP_ID}).merchant == ""


# -- the order: a deposit-back applied once ---------------------------------------------------------------


def test_a_deposit_back_is_applied_once_however_many_copies_and_messages_repeat_it() -> None:
    order, params = paid_order(), deposit_back("T1", "R1")
    assert tell(order, params) == ["MessageReceived", "RefundDepositedBack"]
    assert tell(order, params) == ["MessageReceived"]  # a copy: recorded as a delivery, changes nothing
    assert tell(order, deposit_back("T1", "R1", dback_status="F")) == ["MessageReceived"]  # same refund, later
    assert tell(order, deposit_back("T1", "R2", dback_amount="1.00")) == ["MessageReceived", "RefundDepositedBack"]
    assert order.deposit_backs == {"R1": "S", "R2": "S"} and order.messages[params["notify_id"]] == 2


def test_a_deposit_back_moves_no_money_and_tells_the_merchants_system_nothing() -> None:
    order = paid_order()
    before = (order.refunded, dict(order.refunds), set(order.outbox), dict(order.deliveries), order.status)
    tell(order, deposit_back())
    assert (order.refunded, order.refunds, set(order.outbox), order.deliveries, order.status) == before


def test_a_copy_of_a_message_beyond_max_copies_is_not_recorded() -> None:
    order, params = paid_order(), deposit_back()
    assert [tell(order, params, max_copies=2) for _ in range(3)] == [
        ["MessageReceived", "RefundDepositedBack"], ["MessageReceived"], []]


def test_a_recorded_message_keeps_every_parameter_exactly_as_received_with_the_key_that_verified_it() -> None:
    order, params = paid_order(), deposit_back()
    order.collect_events()
    order.receive_message(MessageNotice.from_params(params), params, delivery_id="d1", received_at=datetime.now(UTC),
                          remote_addr="198.51.100.7", key="fp-1")
    received = order.collect_events()[0]
    assert (received.params, received.key, received.duplicate, received.remote_addr) == (  # type: ignore[attr-defined]
        params, "fp-1", False, "198.51.100.7")


# -- a message of its own ---------------------------------------------------------------------------------


def test_an_unknown_msg_method_is_recorded_in_the_messages_own_stream_and_its_copies_change_nothing() -> None:
    params = message(UNKNOWN, out_biz_no="B1", status="SUCCESS")
    notice = MessageNotice.from_params(params)
    stream = AppMessage(app_id=APP_ID, notify_id=notice.notify_id, msg_method=notice.msg_method)
    facts: dict[str, Any] = {"delivery_id": "d", "received_at": datetime.now(UTC), "remote_addr": "198.51.100.7",
                             "max_copies": 2}
    assert [stream.receive(notice, params, **facts) for _ in range(3)] == [True, True, False]
    received = [e for e in stream.collect_events() if type(e).__name__ == "MessageReceived"]
    assert [(e.params, e.duplicate) for e in received] == [(params, False), (params, True)]  # type: ignore[attr-defined]
    assert stream.id == AppMessage.create_id(APP_ID, notice.notify_id) != AppMessage.create_id(APP_ID, "other")


# -- the service, on the in-memory twins -------------------------------------------------------------------


def make_service(alipay: SandboxAlipay, **env: str) -> LedgerService:
    store = LedgerStore(env=persistence_env("memory://"))
    lock, metrics = LocalOrderLock(wait_seconds=1.0), Metrics()
    intake = GroupCommit(lambda: StoreIO(store, lock), store, require_known_orders=False, wait_seconds=1.0,
                         metrics=metrics)
    settings = Settings.from_env({**alipay.env(), "LEDGER_DATABASE_URL": "memory://", **env})
    return LedgerService(store, lock, MemoryRejectionLog(size=10), settings.apps, intake=intake, metrics=metrics,
                         max_copies=3)


@pytest.fixture
def service(alipay: SandboxAlipay) -> Iterator[LedgerService]:
    service = make_service(alipay)
    yield service
    service.close()


def record(service: LedgerService, body: bytes) -> Any:
    return service.record_callback(RecordCallback(body=body, remote_addr="198.51.100.7"))


def kinds(service: LedgerService, out_trade_no: str) -> list[str]:
    return [type(e).__name__ for e in service.history(APP_ID, out_trade_no)]


def test_the_service_records_a_deposit_back_in_its_orders_stream_and_applies_it_once(
        service: LedgerService, alipay: SandboxAlipay) -> None:
    order = ref("M")
    record(service, alipay.body(order))
    body = alipay.deposit_back(order, "R1")
    first, copy = record(service, body), record(service, body)
    assert isinstance(first, RecordedMessage) and (first.applied, copy.applied, copy.recorded) == (True, False, True)
    assert first.stream_id == Order.create_id(APP_ID, order)
    assert kinds(service, order)[3:] == ["MessageReceived", "RefundDepositedBack", "MessageReceived"]


def test_copies_beyond_max_copies_are_answered_counted_and_not_recorded(service: LedgerService,
                                                                        alipay: SandboxAlipay) -> None:
    order = ref("M")
    record(service, alipay.body(order))
    body = alipay.deposit_back(order, "R1")
    answers = [record(service, body) for _ in range(5)]
    assert [a.recorded for a in answers] == [True, True, True, False, False]
    assert kinds(service, order).count("MessageReceived") == 3
    assert service.metrics.copies_not_recorded._value.get() == 2


def test_an_unknown_msg_method_is_recorded_in_its_own_stream_and_touches_no_order(
        service: LedgerService, alipay: SandboxAlipay) -> None:
    order = ref("M")
    record(service, alipay.body(order))
    body = alipay.message(UNKNOWN, {"out_trade_no": order, "status": "SUCCESS"}, notify_id="N-1")
    answer = record(service, body)
    assert answer.stream_id == AppMessage.create_id(APP_ID, "N-1") and not answer.applied
    assert "MessageReceived" not in kinds(service, order)
    stream = service.store.repository.get(answer.stream_id)
    assert (type(stream), stream.msg_method, stream.deliveries) == (AppMessage, UNKNOWN, 1)


def test_a_deposit_back_for_an_order_the_ledger_never_saw_opens_no_order(service: LedgerService,
                                                                         alipay: SandboxAlipay) -> None:
    order = ref("M")
    answer = record(service, alipay.deposit_back(order, "R1", notify_id="N-2"))
    assert service.get_order(APP_ID, order) is None
    assert (answer.stream_id, answer.applied, answer.recorded) == (AppMessage.create_id(APP_ID, "N-2"), False, True)
    assert type(service.store.repository.get(answer.stream_id)) is AppMessage


def test_a_message_signed_over_the_v2_string_is_accepted(service: LedgerService, alipay: SandboxAlipay) -> None:
    params = sign_params(message_notification(APP_ID, UNKNOWN, {"a": "b"}), alipay.private_key, v2=True)
    assert record(service, encode_form(params)).recorded


def test_a_message_with_a_bad_signature_is_refused_logged_and_recorded_nowhere(
        service: LedgerService, alipay: SandboxAlipay) -> None:
    order = ref("M")
    record(service, alipay.body(order))
    forged = alipay.deposit_back(order, "R1", dback_amount="88.00").replace(b"88.00", b"8.00")
    with pytest.raises(SignatureInvalid):
        record(service, forged)
    assert service.rejections.latest(1)[0]["reason"] == "bad_signature"
    assert "MessageReceived" not in kinds(service, order)


def test_an_encrypted_message_is_refused_naming_aes_and_kept_in_the_rejected_log(
        service: LedgerService, alipay: SandboxAlipay) -> None:
    body = alipay.message(UNKNOWN, "bm90IHJlYWRhYmxlIHdpdGhvdXQgdGhlIGtleQ==", encrypt_type="AES")
    with pytest.raises(EncryptedMessage):
        record(service, body)
    refused = service.rejections.latest(1)[0]
    assert refused["reason"] == "aes_encrypted" and "AES" in refused["detail"]


def test_a_message_is_not_held_to_the_seller_check_of_trade_notifications(alipay: SandboxAlipay) -> None:
    service = make_service(alipay, LEDGER_ALIPAY_SELLER_ID="2088000000000001")
    try:
        assert record(service, alipay.message(UNKNOWN, {"a": "b"})).recorded
    finally:
        service.close()


def test_a_deposit_back_alipay_signed_but_the_ledger_cannot_read_is_kept_in_quarantine(
        service: LedgerService, alipay: SandboxAlipay) -> None:
    body = alipay.message(DEPOSIT_BACK, {"out_trade_no": "T1", "out_request_no": "R1", "dback_status": "?"})
    with pytest.raises(Unbookable):
        record(service, body)
    [kept] = service.quarantine.latest(10)
    assert "unknown_status" in str(kept["detail"])


def test_a_service_providers_deposit_back_goes_to_its_merchants_order(service: LedgerService,
                                                                    alipay: SandboxAlipay) -> None:
    order, merchant = ref("M"), "2021000000000101"
    record(service, alipay.body(order, auth_app_id=merchant))
    answer = record(service, alipay.deposit_back(order, "R1", msg_app_id=merchant))
    assert (answer.stream_id, answer.applied) == (Order.create_id(APP_ID, order, merchant), True)
    assert service.get_order(APP_ID, order) is None  # the app's own order of that number: none


def test_an_encrypted_message_verified_as_alipays_does_not_count_towards_a_sources_refusal_flood() -> None:
    assert not floods_count(EncryptedMessage("AES"))
    assert floods_count(SignatureInvalid("forged"))
