"""What Alipay, a merchant or a stranger may send that is absurd, hostile or replayed: each is answered, costs
a bounded amount, and leaves the ledger and its read side able to go on. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ledger.adapters.refusals.rejections import printable
from ledger.alipay.sandbox import encode_form
from ledger.bootstrap import Ledger
from ledger.domain.errors import Unbookable
from ledger.domain.order import DEFAULT_MAX_COPIES
from projections.queries import order_row
from projections.tables import alerts, daily_totals
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.ledgers import kinds, record
from tests.support.refs import ref

UNBOOKABLE = {
    "a payment time in year 1": {"gmt_payment": "0001-01-01 00:00:00"},
    "an amount of thirteen digits": {"total_amount": "9999999999999.99"},
    "full-width digits": {"total_amount": "９９.００"},
    "a NUL in the subject": {"subject": "a\x00b"},
    "an out_trade_no of 65 characters": {"out_trade_no": "L" * 65},
    "a NUL in out_trade_no": {"out_trade_no": "A\x00B"},
}


def alert_kinds(ledger: Ledger) -> list[str]:
    assert ledger.engine is not None
    with ledger.engine.connect() as conn:
        return list(conn.execute(sa.select(alerts.c.kind)).scalars())


class HostileInputContract:
    @pytest.fixture
    def ledger(self) -> Ledger:
        raise NotImplementedError

    @pytest.mark.parametrize("case", sorted(UNBOOKABLE))
    def test_a_signed_notification_beyond_alipays_limits_is_kept_whole_and_never_booked(
            self, ledger: Ledger, alipay: SandboxAlipay, case: str) -> None:
        fields = {"out_trade_no": ref(), **UNBOOKABLE[case]}
        body = encode_form(alipay.params(**fields))
        for _ in range(2):  # Alipay's re-send is a copy of one quarantined record
            with pytest.raises(Unbookable):
                record(ledger, body)
        kept = ledger.service.quarantine.latest(5)
        assert len(kept) == 1 and kept[0]["copies"] == 2
        assert kept[0]["body"] == printable(body.decode("ascii", "backslashreplace"))
        assert kinds(ledger, fields["out_trade_no"]) == []
        assert ledger.rejections.latest(5) == []  # the security log is for what did not verify

        # The read side takes the alert and goes on: a normal payment afterwards reaches it.
        normal = ref()
        record(ledger, alipay.body(normal))
        assert ledger.runner is not None
        ledger.runner.catch_up()
        assert "unbookable_notification" in alert_kinds(ledger)
        row = order_row(ledger.engine, APP_ID, normal)  # type: ignore[arg-type]
        assert row is not None and row["status"] == "PAID"

    def test_the_quarantine_keeps_the_body_byte_for_byte(self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        body = encode_form(alipay.params(ref(), subject="a\x00b"))
        with pytest.raises(Unbookable):
            record(ledger, body)
        assert ledger.engine is not None
        from ledger.adapters.refusals.quarantine import quarantined_callbacks

        with ledger.engine.connect() as conn:
            assert bytes(conn.execute(sa.select(quarantined_callbacks.c.body)).scalar_one()) == body

    def test_padded_or_rewrapped_copies_of_an_unbookable_notification_are_copies_of_one_quarantined_row(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        params = alipay.params(ref(), total_amount="9999999999999.99")
        body = encode_form(params)
        rewrapped = encode_form({**params, "sign": params["sign"][:64] + "\r\n" + params["sign"][64:]})
        for copy in (body, body + b"&pad=", body + b"&" + b"k" * 5000 + b"=", rewrapped):
            with pytest.raises(Unbookable):
                record(ledger, copy)
        kept = ledger.service.quarantine.latest(5)
        assert [row["copies"] for row in kept] == [4]
        assert kept[0]["body"] == body.decode("ascii")  # the first copy, whole

    def test_copies_beyond_the_cap_are_answered_success_and_only_counted(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        body = alipay.body(order)
        answers = [record(ledger, body) for _ in range(DEFAULT_MAX_COPIES + 5)]
        assert all(a.status == "PAID" for a in answers)
        counts = Counter(kinds(ledger, order))
        assert (counts["CallbackReceived"], counts["PaymentConfirmed"]) == (DEFAULT_MAX_COPIES, 1)
        assert ledger.service.metrics.copies_not_recorded._value.get() == 5

    def test_copies_padded_with_empty_parameters_record_the_canonical_notification_and_stay_bounded(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        genuine = alipay.body(order)
        padded = [genuine + b"&" + (b"k%d" % n) * (9000 // len(b"k%d" % n)) + b"=" for n in range(30)]
        answers = [record(ledger, body) for body in padded]
        assert all(a.status == "PAID" for a in answers)
        received = [e for e in ledger.service.history(APP_ID, order) if type(e).__name__ == "CallbackReceived"]
        assert len(received) == DEFAULT_MAX_COPIES
        assert all(e.params == received[0].params for e in received)
        assert not any(key.startswith("k") for key in received[0].params)
        assert ledger.service._checked.size_bytes <= len(genuine)  # padded bodies are not remembered

    def test_a_refund_of_more_than_was_paid_is_flagged_alerted_and_not_booked(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        record(ledger, alipay.body(order))
        record(ledger, alipay.body(order, refund_fee="1000.00", out_biz_no="R1", gmt_refund="2026-11-21 11:00:00"))
        assert "RefundRecorded" not in kinds(ledger, order)
        assert ledger.runner is not None and ledger.engine is not None
        ledger.runner.catch_up()
        row = order_row(ledger.engine, APP_ID, order)
        assert row is not None and (row["anomaly"], row["refunded_amount"]) == (True, Decimal("0.00"))
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.sum(daily_totals.c.refunds_count))).scalar_one() == 0
        assert "anomaly" in alert_kinds(ledger)

    def test_a_paid_notification_of_zero_is_flagged_not_paid(self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref()
        answer = record(ledger, alipay.body(order, total_amount="0.00", receipt_amount="0.00",
                                            buyer_pay_amount="0.00"))
        assert answer.status == "PENDING"
        assert ledger.runner is not None and ledger.engine is not None
        ledger.runner.catch_up()
        row = order_row(ledger.engine, APP_ID, order)
        assert row is not None and (row["status"], row["anomaly"]) == ("PENDING", True)


class TestHostileInputOnSQLite(HostileInputContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url)


class TestHostileInputOnPostgresWithRedis(HostileInputContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str,
               redis_prefix: str) -> Ledger:
        return make_ledger(postgres_url, LEDGER_REDIS_URL=redis_url, LEDGER_REDIS_PREFIX=redis_prefix)
