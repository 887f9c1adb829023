"""A real `ledger serve` process on a free port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.services import free_port

FINANCE_TOKEN, OPERATOR_TOKEN = "f-token-0123456789", "o-token-0123456789"  # give them in LEDGER_API_TOKENS


class LedgerServer:
    """`max_files`: the process's descriptor limit (soft and hard), as a host's `ulimit -n` would set it."""

    def __init__(self, env: dict[str, str], log: Path, *args: str, max_files: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(self.port), "--log-level", "warning", *args],
            env={"PATH": os.environ["PATH"], **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files)))
            if max_files else None,
        )

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ledger serve exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"ledger serve not ready in {seconds} s:\n{self.log.read_text()}")

    def notify(self, body: bytes, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(self.url + "/api/alipay/notify", data=body, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def read_order(self, out_trade_no: str, *, until: Callable[[dict[str, Any]], bool],
                   seconds: float = 15) -> dict[str, Any]:
        """GET the order's read-model row (with FINANCE_TOKEN) until `until(row)` holds."""
        deadline, row = time.monotonic() + seconds, None
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{self.url}/api/orders/{out_trade_no}",
                                             headers={"Authorization": f"Bearer {FINANCE_TOKEN}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    row = json.loads(response.read())
                if until(row):
                    return row
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(0.1)
        raise AssertionError(f"the read model did not get there in {seconds} s: {row}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
