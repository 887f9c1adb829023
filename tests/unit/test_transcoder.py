"""The orjson transcoder writes and reads the library's own format, for every kind of event the ledger has."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

from ledger.adapters.eventstore.transcoder import OrjsonTranscoder
from ledger.domain.order import Order

NOW = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
SAMPLES: dict[str, object] = {
    "<class 'str'>": "支付宝 a+b%20c \"quoted\" \\ tab\t",
    "<class 'int'>": 3,
    "int | None": None,
    "<class 'bool'>": True,
    "<class 'decimal.Decimal'>": Decimal("88.10"),
    "decimal.Decimal | None": Decimal("-0.01"),
    "<class 'datetime.datetime'>": NOW.astimezone(timezone(timedelta(hours=8))),
    "datetime.datetime | None": None,
    "dict[str, str]": {"subject": "书", "empty": "", "sign": "ab+/=="},
    "list[str]": ["payment", "refund:R1"],
}
EVENTS = [v for v in vars(Order).values() if isinstance(v, type) and issubclass(v, Aggregate.Event)]


def transcoders() -> tuple[JSONTranscoder, JSONTranscoder]:
    pair = (JSONTranscoder(), OrjsonTranscoder())
    for transcoder in pair:
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    return pair


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.__name__)
def test_every_event_round_trips_between_the_library_transcoder_and_orjson(event: type) -> None:
    hints = typing.get_type_hints(event)
    state: dict[str, object] = {"timestamp": NOW}
    for field in dataclasses.fields(event):
        if field.name in ("originator_id", "originator_version", "timestamp"):
            continue  # the mapper takes the first two out of the state
        kind = str(hints[field.name])
        assert "UUID" not in kind, f"{event.__name__}.{field.name}: orjson would store a UUID as a string"
        assert kind in SAMPLES, f"{event.__name__}.{field.name}: add a sample of {kind} to this test"
        state[field.name] = SAMPLES[kind]
    library, fast = transcoders()
    assert fast.decode(fast.encode(state)) == state
    assert library.decode(fast.encode(state)) == state  # what orjson writes, the library reads
    assert fast.decode(library.encode(state)) == state  # and events stored before read back alike
