"""`ledger projections run` as a supervised child of `ledger serve`.

Measured: run as a thread inside the serving process, the projections took the intake from 117 to about
64 notifications a second (they compete for the same GIL); as a process they run on another core and leave
the intake as fast as without them. The child is restarted if it dies, and told to stop if we die.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: if `ledger serve` is killed outright, its child must not linger as an orphan.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ProjectionProcess:
    def __init__(self, *, restart_seconds: float = 1.0, log_level: str = "info") -> None:
        self.restart_seconds, self.log_level = restart_seconds, log_level
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.thread = threading.Thread(target=self._supervise, name="projections-supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.child and self.child.poll() is None:
            self.child.terminate()
        self.thread.join(timeout=15)

    def status(self) -> dict[str, Any]:
        alive = self.child is not None and self.child.poll() is None
        return {"kind": "process", "running": alive, "pid": self.child.pid if alive and self.child else None,
                "restarts": self.restarts}

    def _supervise(self) -> None:
        env = {**os.environ, "LEDGER_PROJECTIONS": "separate"}
        while not self.stopping.is_set():
            self.child = subprocess.Popen([sys.executable, "-m", "ledger.cli", "projections", "run",
                                           "--log-level", self.log_level], env=env,
                                          preexec_fn=_die_with_parent)  # noqa: PLW1509 - nothing else runs in it
            code = self.child.wait()
            if not self.stopping.is_set():
                self.restarts += 1
                log.warning("projections process exited with %s; restarting in %s s", code, self.restart_seconds)
                self.stopping.wait(self.restart_seconds)
