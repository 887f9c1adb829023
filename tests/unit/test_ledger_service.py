"""LedgerService on the in-memory twins (memory store, LocalOrderLock, MemoryRejectionLog): a sync caller
records through the loop the service keeps, strict mode refuses and logs, the seller is checked, and an
order registered twice differently is a conflict. Milliseconds each."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from ledger.adapters.eventstore.store import LedgerStore, persistence_env
from ledger.adapters.locks.local import LocalOrderLock
from ledger.adapters.metrics import Metrics
from ledger.adapters.refusals.rejections import MemoryRejectionLog
from ledger.config import Settings
from ledger.domain.errors import OrderConflict, RetryLater, SellerMismatch, UnknownOrder
from ledger.intake.io import StoreIO
from ledger.intake.loop import GroupCommit
from ledger.service.application import LedgerService, RecordCallback, RegisterOrder
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.refs import ref


def make_service(alipay: SandboxAlipay, *, strict: bool = False, **env: str) -> LedgerService:
    store = LedgerStore(env=persistence_env("memory://"))
    lock, metrics = LocalOrderLock(wait_seconds=1.0), Metrics()
    intake = GroupCommit(lambda: StoreIO(store, lock), store, require_known_orders=strict, wait_seconds=1.0,
                         metrics=metrics)
    settings = Settings.from_env({**alipay.env(), "LEDGER_DATABASE_URL": "memory://", **env})
    return LedgerService(store, lock, MemoryRejectionLog(size=10), settings.apps, intake=intake, metrics=metrics)


@pytest.fixture
def service(alipay: SandboxAlipay) -> Iterator[LedgerService]:
    service = make_service(alipay)
    yield service
    service.close()


def cmd(body: bytes) -> RecordCallback:
    return RecordCallback(body=body, remote_addr="198.51.100.7")


def test_a_sync_caller_records_a_callback_and_its_copy_is_a_duplicate(
        service: LedgerService, alipay: SandboxAlipay) -> None:
    body = alipay.body(ref("S"))
    first, copy = service.record_callback(cmd(body)), service.record_callback(cmd(body))
    assert (first.status, first.duplicate, copy.duplicate, copy.version) == ("PAID", False, True, 4)


def test_strict_mode_refuses_an_unregistered_order_and_logs_it_until_it_is_registered(alipay: SandboxAlipay) -> None:
    service = make_service(alipay, strict=True)
    try:
        order = ref("S")
        with pytest.raises(UnknownOrder):
            service.record_callback(cmd(alipay.body(order)))
        assert service.rejections.latest(1)[0]["reason"] == "unknown_order"
        service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00")))
        assert service.record_callback(cmd(alipay.body(order))).status == "PAID"
    finally:
        service.close()


def test_a_notification_for_another_seller_is_rejected(alipay: SandboxAlipay) -> None:
    service = make_service(alipay, LEDGER_ALIPAY_SELLER_ID="2088000000000001")
    try:
        with pytest.raises(SellerMismatch):
            service.record_callback(cmd(alipay.body(ref("S"), seller_id="2088000000000666")))
        assert service.rejections.latest(1)[0]["reason"] == SellerMismatch.reason
    finally:
        service.close()


def test_registering_an_order_again_alike_is_not_new_and_differently_is_a_conflict(service: LedgerService) -> None:
    order = ref("S")
    assert service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00"), "a book")).newly is True
    assert service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00"), "a book")).newly is False
    with pytest.raises(OrderConflict):
        service.register_order(RegisterOrder(APP_ID, order, Decimal("99.00"), "a book"))


def test_after_close_a_callback_is_answered_retry_later(alipay: SandboxAlipay) -> None:
    service = make_service(alipay)
    service.record_callback(cmd(alipay.body(ref("S"))))
    service.close()
    with pytest.raises(RetryLater):
        service.record_callback(cmd(alipay.body(ref("S"))))
    service.close()
