"""Alipay's message service on the real stores: a deposit-back in its order's stream and row, any other message
in a stream of its own, the `messages` table rebuilt from the log as it was built, copies racing at once
applied once, and `ledger audit verify` re-checking recorded messages. On SQLite (the embedded default, the
in-process lock) and on PostgreSQL with the Redis lock."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ledger.bootstrap import Ledger
from ledger.domain.message import AppMessage
from ledger.service.audit import recorded_callbacks_that_fail
from projections import all_projections
from projections.queries import order_row
from projections.queries.messages import iter_messages, list_messages
from projections.runner import ProjectionRunner
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.histories import snapshot
from tests.support.ledgers import kinds, record
from tests.support.refs import ref

UNKNOWN = "alipay.fund.trans.order.changed"
TAMPER = {
    "sqlite": "update stored_events set state = cast(replace(cast(state as text), :old, :new) as blob)"
              " where topic like '%MessageReceived'",
    "postgresql": "update ledger_events set state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new),"
                  " 'UTF8') where topic like '%MessageReceived'",
}


def messages_of(ledger: Ledger, **filters: object) -> list[dict[str, object]]:
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    return list(iter_messages(ledger.engine, **filters))


class MessagesContract:
    @pytest.fixture
    def ledger(self) -> Ledger:
        raise NotImplementedError

    def test_a_deposit_back_is_recorded_in_its_orders_stream_and_shown_in_its_row(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref("D")
        record(ledger, alipay.body(order))
        record(ledger, alipay.deposit_back(order, "R1", dback_amount="30.00"))
        record(ledger, alipay.deposit_back(order, "R2", dback_status="F"))
        assert kinds(ledger, order)[3:] == ["MessageReceived", "RefundDepositedBack"] * 2
        [listed_1, listed_2] = messages_of(ledger)
        row = order_row(ledger.engine, APP_ID, order)  # type: ignore[arg-type]
        assert row is not None
        assert (row["deposit_back_status"], row["deposited_back_amount"]) == ("F", Decimal("30.00"))
        assert row["deposit_back_at"] is not None and row["deposit_back_at"].tzinfo is not None
        assert (row["refunded_amount"], row["status"]) == (Decimal("0.00"), "PAID")  # no money moved
        assert [(m["out_trade_no"], m["applied"], m["duplicate"]) for m in (listed_1, listed_2)] == [
            (order, True, False), (order, True, False)]

    def test_an_unknown_message_is_recorded_in_its_own_stream_and_listed_as_recorded_only(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        body = alipay.message(UNKNOWN, {"out_biz_no": "B1", "status": "SUCCESS"}, notify_id="N-unknown")
        answers = [record(ledger, body), record(ledger, body)]
        assert {a.stream_id for a in answers} == {AppMessage.create_id(APP_ID, "N-unknown")}
        listed = messages_of(ledger)
        assert [(m["msg_method"], m["out_trade_no"], m["applied"], m["duplicate"]) for m in listed] == [
            (UNKNOWN, None, False, False), (UNKNOWN, None, False, True)]

    def test_the_list_filters_by_method_app_and_time_and_pages_by_position(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref("D")
        record(ledger, alipay.body(order))
        record(ledger, alipay.deposit_back(order, "R1"))
        for n in range(3):
            record(ledger, alipay.message(UNKNOWN, {"n": n}))
        assert ledger.engine is not None
        assert len(messages_of(ledger)) == 4
        assert [m["msg_method"] for m in messages_of(ledger, msg_method=UNKNOWN)] == [UNKNOWN] * 3
        assert messages_of(ledger, app_id="2021999999999999") == []
        now = datetime.now(UTC)
        assert len(messages_of(ledger, received_from=now - timedelta(minutes=5), received_to=now)) == 4
        assert messages_of(ledger, received_from=now) == []
        first = list_messages(ledger.engine, limit=3)
        rest = list_messages(ledger.engine, limit=3, after_position=first[-1]["position"])
        assert [m["position"] for m in first + rest] == [m["position"] for m in messages_of(ledger)]

    def test_the_messages_table_rebuilds_row_for_row_even_when_a_message_and_its_change_part_across_batches(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        for n in range(3):
            order = ref("D")
            record(ledger, alipay.body(order))
            record(ledger, alipay.deposit_back(order, f"R{n}"))
            record(ledger, alipay.deposit_back(order, f"R{n}"))  # another copy: recorded, not applied
            record(ledger, alipay.message(UNKNOWN, {"out_trade_no": order}))
        # One event per step: every MessageReceived is applied a batch before its RefundDepositedBack.
        projections = all_projections(downstream=False, robots=False)  # as the ledger's own runner is configured
        ProjectionRunner(ledger.store, ledger.engine, projections, batch_size=1).catch_up()  # type: ignore[arg-type]
        incremental = snapshot(ledger.engine)  # type: ignore[arg-type]
        assert Counter(m["applied"] for m in incremental["messages"]) == Counter({True: 3, False: 6})
        assert ledger.runner is not None
        ledger.runner.rebuild()
        assert snapshot(ledger.engine) == incremental  # type: ignore[arg-type]

    def test_copies_of_a_deposit_back_arriving_at_once_apply_it_once(self, ledger: Ledger,
                                                                    alipay: SandboxAlipay) -> None:
        order = ref("D")
        record(ledger, alipay.body(order))
        body = alipay.deposit_back(order, "R1")
        start = threading.Barrier(8)
        answers: list[object] = []

        def copy() -> None:
            start.wait()
            answers.append(record(ledger, body))

        threads = [threading.Thread(target=copy) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answers) == 8
        counts = Counter(kinds(ledger, order))
        assert (counts["MessageReceived"], counts["RefundDepositedBack"]) == (8, 1)
        assert sum(1 for m in messages_of(ledger) if m["applied"]) == 1

    def test_audit_verify_rechecks_recorded_messages_and_names_one_altered_after_recording(
            self, ledger: Ledger, alipay: SandboxAlipay) -> None:
        order = ref("D")
        record(ledger, alipay.body(order))
        record(ledger, alipay.deposit_back(order, "RQ-AUDIT"))
        record(ledger, alipay.message(UNKNOWN, {"out_biz_no": "B1"}))
        counted: list[int] = []
        assert list(recorded_callbacks_that_fail(ledger.store, ledger.settings.apps, counted=counted)) == []
        assert counted == [3]  # the trade notification and both messages
        assert ledger.engine is not None
        with ledger.engine.begin() as conn:
            changed = conn.execute(sa.text(TAMPER[conn.dialect.name]), {"old": "RQ-AUDIT", "new": "RQ-AUDIX"})
            assert changed.rowcount >= 1
        [found] = recorded_callbacks_that_fail(ledger.store, ledger.settings.apps)
        assert (found.out_trade_no, found.app_id) == (order, APP_ID) and "does not verify" in found.problem


class TestMessagesOnSQLite(MessagesContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], sqlite_url: str) -> Ledger:
        return make_ledger(sqlite_url)


class TestMessagesOnPostgresAndRedis(MessagesContract):
    @pytest.fixture
    def ledger(self, make_ledger: Callable[..., Ledger], postgres_url: str, redis_url: str,
               redis_prefix: str) -> Ledger:
        return make_ledger(postgres_url, LEDGER_REDIS_URL=redis_url, LEDGER_REDIS_PREFIX=redis_prefix)
