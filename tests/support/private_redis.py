"""A redis-server owned by one test, so the test can stop Redis without touching the shared one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.services import START_WAIT_SECONDS, free_port, redis_answers


class PrivateRedis:
    """A redis-server of the test's own on a free port, which the test may stop and start again."""

    def __init__(self, workdir: Path, binary: str = "redis-server") -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [
                self._binary, "--save", "", "--appendonly", "no", "--port", str(self.port),
                "--bind", "127.0.0.1", "--daemonize", "no",
                "--dir", str(self._workdir), "--logfile", str(self._workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_WAIT_SECONDS
        while not redis_answers(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"private redis-server on port {self.port} did not start; see {self._workdir}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut the server down (SIGTERM: a clean shutdown) and wait until it has exited."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None
