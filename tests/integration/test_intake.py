"""The intake against real stores: SQLite (embedded default), and PostgreSQL with the Redis lock."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.errors import Rejected, SellerMismatch, SignatureInvalid, UnknownApp, UnknownOrder
from ledger.domain.order import DEFAULT_MAX_COPIES
from ledger.service.application import RegisterOrder
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.ledgers import kinds, record
from tests.support.refs import ref


class IntakeContract:
    """Run against every backend by the subclasses below."""

    @pytest.fixture
    def ledger(self) -> Ledger:
        raise NotImplementedError

    @pytest.fixture
    def strict_ledger(self) -> Ledger:
        raise NotImplementedError

    def test_verified_notification_is_recorded_and_confirms_payment(self, ledger: Ledger,
                                                                    alipay: SandboxAlipay) -> None:
        order = ref()
        params = alipay.params(order)
        result = record(ledger, alipay.body(order, notify_id=params["notify_id"]))
        assert (result.status, result.duplicate) == ("PAID", False)
        assert kinds(ledger, order) == ["Opened", "CallbackReceived", "PaymentConfirmed"]

    def test_callback_event_keeps_every_parameter_exactly_as_received_so_it_can_be_reverified(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        from ledger.alipay.signature import verify
        from ledger.config import Settings

        order = ref()
        params = alipay.params(order, subject="书 with a trailing space ", passback_params="a+b%20c%")
        record(ledger, alipay_body(params))
        stored = next(e for e in ledger.service.history(APP_ID, order) if type(e).__name__ == "CallbackReceived")
        assert stored.params == params
        key = Settings.from_env(alipay.env()).apps[APP_ID].keys
        verify(stored.params, key)  # an auditor years later, with Alipay's key

    def test_same_notification_twice_confirms_once_and_records_both_deliveries(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        body = alipay.body(order)
        record(ledger, body)
        assert record(ledger, body).duplicate is True
        assert Counter(kinds(ledger, order)) == Counter(Opened=1, CallbackReceived=2, PaymentConfirmed=1)

    def test_notification_that_fails_verification_touches_no_stream_and_is_logged(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        forged = alipay.body(order).replace(b"total_amount=88.00", b"total_amount=0.01")
        with pytest.raises(SignatureInvalid):
            record(ledger, forged)
        assert kinds(ledger, order) == []
        latest = ledger.rejections.latest(1)[0]
        assert (latest["reason"], latest["remote_addr"]) == ("bad_signature", "198.51.100.7")
        assert "total_amount=0.01" in latest["body"]

    def test_notification_of_an_unknown_app_is_rejected(self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        with pytest.raises(UnknownApp):
            record(ledger, alipay.body(ref(), app_id="2021999999999999"))
        assert ledger.rejections.latest(1)[0]["reason"] == "unknown_app"

    def test_amount_differing_from_the_registered_order_is_recorded_as_mismatch_not_payment(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("99.00"), "a book"))
        assert record(ledger, alipay.body(order, total_amount="88.00")).status == "PENDING"
        assert kinds(ledger, order) == ["Opened", "OrderRegistered", "CallbackReceived", "AmountMismatch"]

    def test_strict_mode_answers_retry_later_for_an_unregistered_order_until_it_is_registered(
            self, strict_ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        body = alipay.body(order)
        with pytest.raises(UnknownOrder):
            record(strict_ledger, body)
        assert kinds(strict_ledger, order) == []
        assert strict_ledger.rejections.latest(1)[0]["reason"] == "unknown_order"
        strict_ledger.service.register_order(RegisterOrder(APP_ID, order, Decimal("88.00")))
        assert record(strict_ledger, body).status == "PAID"

    def test_order_as_of_an_earlier_version(self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        record(ledger, alipay.body(order))
        record(ledger, alipay.body(order, trade_status="TRADE_FINISHED"))
        assert ledger.service.get_order(APP_ID, order).status == "FINISHED"
        assert ledger.service.get_order(APP_ID, order, version=3).status == "PAID"

    def test_concurrent_copies_up_to_the_cap_confirm_payment_exactly_once_and_each_is_recorded(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        body = alipay.body(order)
        start, results, errors = threading.Barrier(DEFAULT_MAX_COPIES), [], []

        def deliver() -> None:
            start.wait()
            try:
                results.append(record(ledger, body))
            except Exception as exc:  # collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=deliver) for _ in range(DEFAULT_MAX_COPIES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        counts = Counter(kinds(ledger, order))
        assert counts["PaymentConfirmed"] == 1
        assert counts["CallbackReceived"] == len(results) == DEFAULT_MAX_COPIES
        assert sum(not r.duplicate for r in results) == 1


def alipay_body(params: dict[str, str]) -> bytes:
    from ledger.alipay.sandbox import encode_form

    return encode_form(params)


class TestIntakeOnSQLite(IntakeContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url)

    @pytest.fixture
    def strict_ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url, LEDGER_REQUIRE_KNOWN_ORDERS="on")


class TestIntakeOnPostgresWithRedis(IntakeContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str,
               redis_prefix: str) -> Ledger:
        return make_ledger(postgres_url, LEDGER_REDIS_URL=redis_url, LEDGER_REDIS_PREFIX=redis_prefix)

    @pytest.fixture
    def strict_ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str,
                      redis_prefix: str) -> Ledger:
        return make_ledger(postgres_url, LEDGER_REDIS_URL=redis_url, LEDGER_REDIS_PREFIX=redis_prefix,
                           LEDGER_REQUIRE_KNOWN_ORDERS="on")


def test_configured_seller_must_match(make_ledger: Callable[..., Ledger], sqlite_url: str,
                                      alipay: SandboxAlipay) -> None:
    ledger = make_ledger(sqlite_url, LEDGER_ALIPAY_SELLER_ID="2088000000000001")
    record(ledger, alipay.body(ref()))
    with pytest.raises(SellerMismatch):
        record(ledger, alipay.body(ref(), seller_id="2088000000000666"))


def test_rejections_are_all_one_family(make_ledger: Callable[..., Ledger], sqlite_url: str) -> None:
    ledger = make_ledger(sqlite_url)
    for body in (b"", b"sign=abc", b"a=1&a=2&sign=x", b"\xff\xfe"):
        with pytest.raises(Rejected):
            record(ledger, body)
    assert [r["reason"] for r in ledger.rejections.latest(10)].count("malformed") >= 3


def test_a_copy_identical_byte_for_byte_is_verified_once_and_recorded_as_its_own_delivery(
        make_ledger: Callable[..., Ledger], sqlite_url: str, alipay: SandboxAlipay,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.service import application

    checks: list[dict[str, str]] = []
    real_verify = application.verify

    def counting_verify(params: dict[str, str], public_key: object) -> object:
        checks.append(params)
        return real_verify(params, public_key)  # type: ignore[arg-type]

    monkeypatch.setattr(application, "verify", counting_verify)
    led = make_ledger(sqlite_url)
    order = ref()
    body = alipay.body(order)
    first, copy = record(led, body), record(led, body)
    assert len(checks) == 1
    assert (first.duplicate, copy.duplicate, copy.version) == (False, True, 4)
    received = [e for e in led.service.history(APP_ID, order) if type(e).__name__ == "CallbackReceived"]
    assert len({e.delivery_id for e in received}) == 2
    assert received[0].params == received[1].params

    # What failed is not remembered: the same bad body is checked (and refused) every time, and a body
    # that differs by one byte from a verified one is checked anew.
    bad = body.replace(b"sign=", b"sign=A", 1)
    for _ in range(2):
        with pytest.raises(SignatureInvalid):
            record(led, bad)
    assert len(checks) == 3
    with pytest.raises(Rejected):
        record(led, body.replace(b"total_amount=", b"total_amount=1", 1))
    assert len(checks) == 4
