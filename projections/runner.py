"""Follows the event log from each projection's tracked position, exactly once.

Each batch of a projection is applied in one transaction together with its new position, and the position
moves by compare-and-set: a crash anywhere loses or doubles nothing, and a second runner (another process)
finds the position moved, rolls back, and reads again. Notification ids have gaps (every rejected insert
burns one), so reads are always "greater than the last processed", never "the next id".

Why not eventsourcing's own `ProjectionRunner` (eventsourcing.projection): it runs one projection per
runner, each with its own tracking recorder and its own subscription (a pooled connection held for its
lifetime, on a non-daemon thread), and its view must be a `TrackingRecorder` subclass that writes through
the library's datastore. The ledger's read model is several projections and the dispatcher sharing one
SQLAlchemy engine and one read of the log per step, their rows and positions in one transaction; it
parks a stream that a projection cannot apply and goes on with the others (the library's runner stops on
the first error); and it runs the same on SQLite, where the library has no subscription to offer
(`select_notifications` must be polled). The library's parts that fit are used: `select_notifications`
and `max_notification_id` on the recorder, and the mapper that decodes each stored event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from ledger.adapters.eventstore.store import LedgerStore
from projections import parking
from projections.common import Batch
from projections.tables import parked_streams
from projections.tables import projection_positions as positions

log = logging.getLogger(__name__)
# A step that fails this often in a row is applied stream by stream, and the streams that fail are parked.
MAX_TRIES = 3


class Projection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> tuple[sa.Table, ...]:
        """The tables it writes (rebuilt with it); none for one that only reacts, as the dispatcher."""
        ...

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        """Apply a batch of (position, event), in log order, within the caller's transaction."""
        ...


class PositionMoved(Exception):
    """Another runner advanced this projection first: this batch was rolled back, read again."""


class ProjectionRunner:
    def __init__(self, store: LedgerStore, engine: sa.Engine, projections: Sequence[Projection], *,
                 batch_size: int = 500, max_tries: int = MAX_TRIES,
                 on_parked: Callable[[str, int, BaseException], object] | None = None) -> None:
        self.store, self.engine, self.projections = store, engine, list(projections)
        self.batch_size, self.max_tries, self.on_parked = batch_size, max_tries, on_parked
        self._failed: tuple[int, int] = (-1, 0)  # (batch start, failures in a row)

    @property
    def _names(self) -> list[str]:
        return [p.name for p in self.projections]

    def positions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {row.name: row.position for row in conn.execute(sa.select(positions))}

    def catch_up(self, *, tables_only: bool = False) -> int:
        """Apply everything recorded so far; returns how many events were applied (all projections).
        `tables_only`: the tables alone, from a process that only needs to read them now (reconciliation): the
        dispatcher stays where it is, for the process that follows the log."""
        applied = 0
        while moved := self.step(tables_only=tables_only):
            applied += moved
        return applied

    def step(self, *, tables_only: bool = False) -> int:
        """One batch from the slowest projection's position; returns the events applied.

        The projections with tables move together, in one transaction: one claim of the positions, their
        rows, one move (measured: a transaction each made a step cost ten times more than its events on a
        busy host, so the read side took more CPU than the intake it follows)."""
        tabled = [p for p in self.projections if p.tables]
        with self.engine.begin() as conn:
            # Read the log before claiming: on SQLite the claim is the write lock, which the event store's
            # writer may be waiting for while our read waits for that writer.
            names = [p.name for p in tabled] if tables_only else self._names
            seen = conn.execute(sa.select(positions.c.position).where(positions.c.name.in_(names))).scalars()
            start = min(seen, default=0)
            batch = self.store.recorder.select_notifications(start, self.batch_size, inclusive_of_start=False)
            if not batch:
                return 0
            current = self._claim(conn)  # what another runner did meanwhile shows here: its events are skipped
            held = parking.held(conn)
            # A parked stream's events wait with it (the position still passes them: re-applying reads them).
            events, parked = parking.decoded(self.store, batch, held)
            ours = {p.name: current[p.name] for p in tabled}
            for stream_id, (position, error) in parked.items():
                parking.park(conn, stream_id, position, error, ours)
            parked |= self._apply_tabled(conn, tabled, events, current, start)
            held |= parked.keys()
            events = [(pos, e) for pos, e in events if str(e.originator_id) not in held]
            # Counted as passed, held back or not: catching up goes on until the positions reach the head.
            applied = sum(1 for p in tabled for n in batch if n.id > current[p.name])
            moved = [p.name for p in tabled if current[p.name] < batch[-1].id]
            if moved:
                conn.execute(positions.update().where(positions.c.name.in_(moved))
                             .values(position=batch[-1].id, updated_at=datetime.now(UTC)))
        for stream_id, (position, error) in parked.items():
            log.error("projections parked stream %s at position %s: %s", stream_id, position, type(error).__name__)
            if self.on_parked is not None:
                self.on_parked(stream_id, position, error)
        for projection in [] if tables_only else self.projections:
            if not projection.tables and current[projection.name] < batch[-1].id:
                mine = [(pos, e) for pos, e in events if pos > current[projection.name]]
                try:
                    self._apply(projection, current[projection.name], mine, batch[-1].id)
                    applied += sum(1 for n in batch if n.id > current[projection.name])
                except PositionMoved:
                    log.info("projection %s was advanced by another runner; reading again", projection.name)
        return applied

    def _apply_tabled(self, conn: sa.Connection, tabled: list[Projection], events: Batch, current: dict[str, int],
                      start: int) -> dict[str, tuple[int, BaseException]]:
        """The batch in bulk; its last try after `max_tries - 1` failures in a row goes stream by stream,
        parking the streams that fail. Returns what was parked. (The bulk path takes no savepoint: a failure
        rolls the whole step back, and the follower tries again.)"""
        failures = self._failed[1] if self._failed[0] == start else 0
        if failures >= self.max_tries - 1:
            log.warning("a projections step failed %d times: applying it stream by stream", failures)
            parked = parking.apply_stream_by_stream(conn, tabled, events, current)
            self._failed = (-1, 0)
            return parked
        try:
            for projection in tabled:
                if mine := [(pos, e) for pos, e in events if pos > current[projection.name]]:
                    projection.apply(conn, mine)
        except Exception:
            self._failed = (start, failures + 1)
            raise  # perhaps the database: the follower tries again
        self._failed = (-1, 0)
        return {}

    def parked(self) -> list[dict[str, Any]]:
        return parking.listing(self.engine)

    def reapply(self, stream_id: str) -> int:
        """Apply a parked stream's held-back events to the projections with tables and let it go (see
        projections.parking); then to the projections without tables (the dispatcher) those they passed while
        it was held, at least once as always. Returns how many events were re-applied."""
        events = parking.reapply(self.engine, self.store, [p for p in self.projections if p.tables], stream_id,
                                 batch_size=self.batch_size)
        passed = self.positions()
        for projection in self.projections:
            if not projection.tables and (due := [(pos, e) for pos, e in events if pos <= passed[projection.name]]):
                with self.engine.begin() as conn:
                    projection.apply(conn, due)
        return len(events)

    def _claim(self, conn: sa.Connection) -> dict[str, int]:
        """Every projection's position, read by writing: the rows stay locked until this transaction ends
        (on SQLite, the write lock is taken now), so a concurrent runner waits here, then reads the moved
        positions. Rows first and the position last could otherwise let two runners write the same rows."""
        found = {row.name: row.position for row in conn.execute(
            positions.update().where(positions.c.name.in_(self._names)).values(updated_at=datetime.now(UTC))
            .returning(positions.c.name, positions.c.position))}
        if missing := set(self._names) - set(found):
            raise LookupError(f"no position for projections {sorted(missing)}: run the migrations")
        return found

    def _apply(self, projection: Projection, old: int, events: list[tuple[int, Any]], to: int) -> None:
        """A projection without tables acts outside any transaction (it sends messages, writes events): it
        goes first and moves its position last, by compare-and-set. At least once, so its effects must be
        idempotent."""
        move = (positions.update().where(positions.c.name == projection.name, positions.c.position == old)
                .values(position=to, updated_at=datetime.now(UTC)))
        with self.engine.begin() as conn:
            if events:
                projection.apply(conn, events)
            if conn.execute(move).rowcount != 1:
                raise PositionMoved(projection.name)

    def rebuild(self) -> int:
        """Replay the whole log into emptied tables in one transaction: readers see the old rows until the
        new ones are complete, then all of them at once. Only the projections with tables: the dispatcher's
        jobs and alerts were sent once already, and it keeps its own position. A stream that cannot be
        applied is parked, as in a step, and the rest replayed."""
        tabled = [p for p in self.projections if p.tables]
        names = [p.name for p in tabled]
        parked: dict[str, tuple[int, BaseException]] = {}
        with self.engine.begin() as conn:
            self._claim(conn)  # a step of a running follower waits until the rebuild is done, then finds it done
            for projection in reversed(tabled):
                for table in projection.tables:
                    conn.execute(table.delete())
            conn.execute(parked_streams.delete())
            zero = dict.fromkeys(names, 0)
            start, replayed = 0, 0
            while batch := self.store.recorder.select_notifications(start, self.batch_size, inclusive_of_start=False):
                events, undecodable = parking.decoded(self.store, batch, set(parked))
                for stream_id, (position, error) in undecodable.items():
                    parking.park(conn, stream_id, position, error, zero)
                parked |= undecodable
                try:
                    with conn.begin_nested():
                        for projection in tabled:
                            projection.apply(conn, events)
                except Exception:
                    parked |= parking.apply_stream_by_stream(conn, tabled, events, zero)
                start, replayed = batch[-1].id, replayed + len(batch)
            conn.execute(positions.update().where(positions.c.name.in_(names))
                         .values(position=start, updated_at=datetime.now(UTC)))
        for stream_id, (position, error) in parked.items():
            log.error("rebuild parked stream %s at position %s: %s", stream_id, position, type(error).__name__)
            if self.on_parked is not None:
                self.on_parked(stream_id, position, error)
        return replayed


class Follower:
    """Runs a ProjectionRunner in a daemon thread: catch up, then wait for PostgreSQL's NOTIFY of a new
    event, or poll (SQLite has no subscription); the timed pull also covers a NOTIFY that got lost."""

    def __init__(self, runner: ProjectionRunner, *, listen_url: str | None, channel: str,
                 poll_seconds: float = 1.0, gather_seconds: float = 0.05) -> None:
        self.runner, self.listen_url, self.channel = runner, listen_url, channel
        self.poll_seconds, self.gather_seconds = poll_seconds, gather_seconds
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="projections", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self.thread.start()

    def status(self) -> dict[str, Any]:
        return {"kind": "thread", "running": self.thread.is_alive(), "last_error": self.last_error}

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        listener = None
        while not self.stopping.is_set():
            try:
                self.runner.catch_up()
                self.last_error = None
                listener = listener or self._listen()
                self._wait(listener)
            except Exception as exc:  # the database may be down: report, wait, try again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("projections stalled: %s", self.last_error)
                listener = self._close(listener)
                self.stopping.wait(self.poll_seconds)
        self._close(listener)

    def _listen(self) -> Any:
        if not self.listen_url:
            return None
        import psycopg

        conn = psycopg.connect(self.listen_url, autocommit=True, connect_timeout=5)
        conn.execute(f'LISTEN "{self.channel}"')
        return conn

    def _wait(self, listener: Any) -> None:
        if listener is None:
            self.stopping.wait(self.poll_seconds)
            return
        for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
            # Every commit notifies: let what arrives next join the same batch. Many notifications can come
            # in one packet, and the generator yields them all: wait once, not once for each (measured: a
            # burst of commits stalled the projections for seconds).
            self.stopping.wait(self.gather_seconds)
            break

    @staticmethod
    def _close(listener: Any) -> None:
        if listener is not None:
            listener.close()
        return None
