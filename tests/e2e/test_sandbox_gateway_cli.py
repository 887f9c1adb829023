"""`ledger sandbox-gateway`: the stand-in gateway run from the command line, as the demo runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ledger.adapters.gateway.http import HttpGateway
from ledger.alipay.keyring import load_key_ring
from ledger.config import AlipayApp
from tests.support.alipay import APP_ID
from tests.support.gateway import QUERY, AppKeys, now
from tests.support.services import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def wait_listening(port: int, process: subprocess.Popen[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ledger sandbox-gateway exited {process.returncode}: {process.communicate()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("ledger sandbox-gateway did not listen in time")


@pytest.mark.slow
def test_a_trade_paid_at_the_command_line_stand_in_is_found_by_a_query(tmp_path: Path, app_keys: AppKeys) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT)}
    subprocess.run([sys.executable, "-m", "ledger.cli", "keygen", "--dir", str(tmp_path)], env=env, check=True,
                   capture_output=True, timeout=60)
    (tmp_path / "app_public.txt").write_text(app_keys.public_b64 + "\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "sandbox-gateway", "--port", str(port), "--app-id", APP_ID,
         "--private-key", str(tmp_path / "alipay_private.pem"), "--app-public-key", str(tmp_path / "app_public.txt")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_listening(port, process)
        base = f"http://127.0.0.1:{port}"
        paid = urllib.request.Request(f"{base}/sandbox/trades", method="POST",
                                      data=json.dumps({"out_trade_no": "T-1001", "total_amount": "88.00"}).encode())
        with urllib.request.urlopen(paid, timeout=5) as answer:
            assert json.loads(answer.read())["trade_status"] == "TRADE_SUCCESS"
        app = AlipayApp(APP_ID, load_key_ring((tmp_path / "alipay_public.txt").read_text()),
                        private_key=app_keys.private_key)
        gateway = HttpGateway({APP_ID: app}, f"{base}/gateway.do", timeout=5, clock=now)
        answer = gateway.call(APP_ID, QUERY, {"out_trade_no": "T-1001"})
        assert (answer.code, answer.fields["total_amount"]) == ("10000", "88.00")
        assert gateway.call(APP_ID, QUERY, {"out_trade_no": "T-1002"}).sub_code == "ACQ.TRADE_NOT_EXIST"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"LEDGER_ALIPAY_GATEWAY_URL=http://127.0.0.1:{port}/gateway.do" in output
