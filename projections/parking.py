"""Streams the read side holds back, so that one event no projection can apply never stops the others.

When a step keeps failing, the runner applies its batch stream by stream, each in a savepoint: a stream
whose events fail is parked here (its first held-back position, the error), its later events wait with it,
and every other stream goes on. An operator lists the parked streams and, after a fix, re-applies one:
its events from the parked position up to where the projections stand are applied in one transaction that
holds the projections' positions, so no step runs meanwhile, and the stream is let go.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from projections.common import Batch
from projections.tables import parked_streams, projection_positions

ERROR_MAX = 2000


class Applies(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> tuple[sa.Table, ...]: ...

    def apply(self, conn: sa.Connection, events: Batch) -> None: ...


def lost_connection(exc: BaseException) -> bool:
    """Whether an error is the database's going away (or timing out), which no stream is to blame for."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or bool(
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated)


def held(conn: sa.Connection) -> set[str]:
    """The ids of the parked streams (few: each one is an operator's task)."""
    return set(conn.execute(sa.select(parked_streams.c.stream_id)).scalars())


def listing(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(parked_streams).order_by(parked_streams.c.parked_at)).mappings().all()
    return [dict(row) for row in rows]


Parked = dict[str, tuple[int, BaseException]]  # stream id -> (its first held-back position, the error)


def park(conn: sa.Connection, stream_id: str, position: int, error: BaseException, current: dict[str, int]) -> None:
    """Hold the stream back from `position` on; `current` is where each projection stood, so re-applying gives
    each projection only what it has not applied yet."""
    text = f"{type(error).__name__}: {error}"[:ERROR_MAX]
    conn.execute(parked_streams.insert().values(stream_id=stream_id, position=position, error=text,
                                                positions=json.dumps(current), parked_at=datetime.now(UTC)))


def decoded(store: Any, notifications: Sequence[Any], held: set[str]) -> tuple[Batch, Parked]:
    """The batch's events of streams not held back, and the streams with an event that does not decode (a class
    renamed, an upcast missing): those are to be parked, as a projection's failure would park them."""
    events: Batch = []
    undecodable: Parked = {}
    for n in notifications:
        stream_id = str(n.originator_id)
        if stream_id in held or stream_id in undecodable:
            continue
        try:
            events.append((n.id, store.mapper.to_domain_event(n)))
        except Exception as exc:
            undecodable[stream_id] = (n.id, exc)
    return [(pos, e) for pos, e in events if str(e.originator_id) not in undecodable], undecodable


def apply_stream_by_stream(conn: sa.Connection, projections: Sequence[Applies], events: Batch,
                           current: dict[str, int]) -> Parked:
    """Apply `events` one stream at a time, each stream in a savepoint; park the streams that fail, from their
    first event that a projection had not applied yet. Returns what was parked."""
    streams: dict[str, Batch] = {}
    for position, event in events:
        streams.setdefault(str(event.originator_id), []).append((position, event))
    ours = {p.name: current[p.name] for p in projections}
    lowest = min(ours.values(), default=0)
    parked: Parked = {}
    for stream_id, mine in streams.items():
        if not (pending := [pos for pos, _ in mine if pos > lowest]):
            continue  # every projection here has it (the batch began lower, for a projection without tables)
        try:
            with conn.begin_nested():
                for projection in projections:
                    if due := [(pos, e) for pos, e in mine if pos > current[projection.name]]:
                        projection.apply(conn, due)
        except Exception as exc:  # this stream's events, not the others'
            if lost_connection(exc):
                raise  # the database, not the stream: nothing is parked, the step is tried again
            park(conn, stream_id, pending[0], exc, ours)
            parked[stream_id] = (pending[0], exc)
    return parked


def reapply(engine: sa.Engine, store: Any, projections: Sequence[Applies], stream_id: str,
            *, batch_size: int = 500) -> Batch:
    """Apply a parked stream's held-back events to every projection with tables, then let it go; returns those
    events. Raises LookupError when the stream is not parked, and the projection's own error when it still
    fails (the stream stays parked, with the new error)."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(parked_streams).where(parked_streams.c.stream_id == stream_id)
                           .with_for_update()).first()
        if row is None:
            raise LookupError(f"stream {stream_id} is not parked")
        names = [p.name for p in projections]
        # Holding the positions' rows keeps every runner's step out until this commits.
        current = {r.name: r.position for r in conn.execute(
            projection_positions.update().where(projection_positions.c.name.in_(names))
            .values(updated_at=datetime.now(UTC)).returning(projection_positions.c.name,
                                                            projection_positions.c.position))}
        before = {name: int(at) for name, at in json.loads(row.positions or "{}").items()}
        failed: Exception | None = None
        mine: Batch = []
        try:
            mine = _events_of(store, stream_id, after=row.position - 1, upto=max(current.values(), default=0),
                              batch_size=batch_size)
            with conn.begin_nested():
                for projection in projections:
                    done = before.get(projection.name, row.position - 1)  # applied before it was parked
                    if due := [(pos, e) for pos, e in mine if done < pos <= current[projection.name]]:
                        projection.apply(conn, due)
        except Exception as exc:  # still failing: it stays parked, with what it says now
            failed = exc
            conn.execute(parked_streams.update().where(parked_streams.c.stream_id == stream_id)
                         .values(error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX]))
        else:
            conn.execute(parked_streams.delete().where(parked_streams.c.stream_id == stream_id))
    if failed is not None:
        raise failed
    return mine


def _events_of(store: Any, stream_id: str, *, after: int, upto: int, batch_size: int) -> Batch:
    """The stream's events in the log from position `after` (exclusive) to `upto` (inclusive)."""
    found: Batch = []
    start = after
    while start < upto:
        batch = store.recorder.select_notifications(start, batch_size, stop=upto, inclusive_of_start=False)
        if not batch:
            break
        found += [(n.id, store.mapper.to_domain_event(n)) for n in batch if str(n.originator_id) == stream_id]
        start = batch[-1].id
    return found
