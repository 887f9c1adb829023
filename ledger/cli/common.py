"""What the subcommands share: the database checked before use, and running parts until told to stop."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Protocol

from ledger.config import Settings, SettingsError

# argparse's subparsers object: its class is private to argparse.
Commands = Any
Formatter = type[argparse.HelpFormatter]


class Part(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def check_database(settings: Settings, *, create: bool = False) -> None:
    """One line and exit 2 if the database cannot be used: a PostgreSQL server down or a database not created,
    or (unless `create`, for migrate and serve) a SQLite file that does not exist, which is then not made."""
    from ledger.bootstrap import database_problem

    problem = database_problem(settings, create=create)
    if problem:
        raise SettingsError(problem)


def run_until_stopped(parts: list[Part]) -> None:
    """Start the parts, wait for SIGTERM or Ctrl-C, stop them in reverse."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for part in parts:
        part.start()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for part in reversed(parts):
        part.stop()
