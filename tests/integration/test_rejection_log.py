"""The rejected-callbacks log always writes a row, whatever a forger sends: NUL bytes, control characters,
an address of any length. On SQLite and on PostgreSQL (whose text refuses NUL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ledger.adapters.refusals.rejections import Rejection, SqlRejectionLog
from ledger.bootstrap import Ledger
from ledger.domain.errors import Rejected
from ledger.service.application import RecordCallback


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))


def test_a_forged_body_with_a_nul_byte_is_logged_with_the_nul_escaped(ledger: Ledger) -> None:
    with pytest.raises(Rejected):
        ledger.service.record_callback(RecordCallback(b"app_id=\x00&sign=abc\x00", remote_addr="198.51.100.7"))
    row = ledger.rejections.latest(1)[0]
    assert row["body"] == "app_id=\\x00&sign=abc\\x00"


def test_a_row_with_an_address_of_any_length_and_control_characters_is_stored_cut_and_escaped(
        ledger: Ledger) -> None:
    ledger.rejections.record(Rejection.of(datetime.now(UTC), "x\x00" * 100, "bad_signature", "why\x00\x1b",
                                          b"a=1"))
    row = ledger.rejections.latest(1)[0]
    assert len(row["remote_addr"]) <= 64 and "\x00" not in row["remote_addr"]
    assert row["detail"] == "why\\x00\\x1b"


def test_when_the_full_row_cannot_be_stored_a_minimal_row_says_so(ledger: Ledger) -> None:
    assert ledger.engine is not None
    log = SqlRejectionLog(ledger.engine, size=100)
    odd = Rejection(datetime.now(UTC), "198.51.100.7", "bad_signature", "detail", "body")
    # A reason too long for its column: refused whole on PostgreSQL, as anything unforeseen would be.
    log.record(Rejection(odd.received_at, odd.remote_addr, "r" * 65, odd.detail, odd.body))
    rows = log.latest(5)
    if ledger.engine.dialect.name == "postgresql":
        assert rows[0]["remote_addr"] == "unknown" and "could not be stored" in rows[0]["detail"]
    else:  # SQLite keeps any length
        assert rows[0]["reason"] == "r" * 65
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from rejected_callbacks")).scalar_one() == 1
