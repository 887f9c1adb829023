"""`ledger sandbox-gateway`: the stand-in for Alipay's gateway (ledger.alipay.sandbox_gateway) over HTTP.

    POST (or GET) /gateway.do    an open-platform call, answered as Alipay answers it
    POST /sandbox/trades         {"out_trade_no": "T-1", "total_amount": "88.00", "trade_status": "TRADE_SUCCESS",
                                  "app_id": optional}: the buyer paid (or not), as the gateway will then tell
    POST /sandbox/bills          {"bill_date": "2026-12-01" (today's, CST, if not given), "trades": [{"out_trade_no":
                                  "T-1", "amount": "88.00", "fee": "0.53"}, {"kind": "refund", "out_trade_no": "T-1",
                                  "amount": "8.00", "refund_request_no": "RF-1"}], "app_id": optional}: the day's
                                  trade bill, as the gateway will then hand it out (fields: sandbox_bill_post); 201

The tests serve it on a thread (tests/support/gateway.py); the demo runs it from the command line.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ledger.alipay.sandbox_gateway import SandboxGateway

PATH = "/gateway.do"
TRADES_PATH = "/sandbox/trades"  # where the demo tells it a buyer paid
BILL_POST_PATH = "/sandbox/bills"  # where the tour tells it the day's bill
BILLS_PATH = "/sandbox/bills/"  # where the download URLs it gives for trade bills point
MAX_REQUEST_BYTES = 1024 * 1024


class GatewayServer:
    """The stand-in on `host:port` (0: a free port); `url` is its gateway's. `start()` serves on a thread of its
    own until `close()`, which also cuts short every delayed answer; `serve_forever()` serves on this one.
    `seen`: each gateway request's method, target and Content-Type, in arrival order (the last 10,000)."""

    def __init__(self, sandbox: SandboxGateway, host: str = "127.0.0.1", port: int = 0,
                 default_app_id: str = "") -> None:
        self.sandbox, self.default_app_id = sandbox, default_app_id
        self.closing = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}{PATH}"
        sandbox.bill_base_url = f"http://{host}:{self.port}{BILLS_PATH}"
        self._thread: threading.Thread | None = None
        self.seen: deque[tuple[str, str, str]] = deque(maxlen=10_000)

    def start(self) -> GatewayServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            daemon=True, name=f"sandbox-gateway-{self.port}")
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        with contextlib.suppress(KeyboardInterrupt):
            self._server.serve_forever()
        self.close()

    def close(self) -> None:
        self.closing.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()  # joins the handlers: none outlives it

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    owner: GatewayServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that connects and sends nothing does not hold close() for ever

    def do_POST(self) -> None:
        path, query = _target(self.path)
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
            self._send(413 if length.isdigit() else 400, b"a Content-Length up to 1 MiB, please", "text/plain")
            return
        body = self.rfile.read(int(length))
        if path == PATH:
            self._gateway(query, body)
        elif path == TRADES_PATH:
            self._add_trade(body)
        elif path == BILL_POST_PATH:
            self._add_bill(body)
        else:
            self._send(404, b"not found", "text/plain")

    def do_GET(self) -> None:  # fzlee's python-alipay-sdk sends every parameter in the query of a GET
        path, query = _target(self.path)
        if path == PATH:
            self._gateway(query, b"")
        elif path.startswith(BILLS_PATH):
            self.server.owner.seen.append((self.command, self.path, ""))
            data = self.server.owner.sandbox.bill_file(path[len(BILLS_PATH):])
            if data is None:
                self._send(404, b"no such bill, or its URL has expired", "text/plain")
            else:
                self._send(200, data, "application/zip" if data[:2] == b"PK" else "text/csv; charset=gbk")
        else:
            self._send(404, b"not found", "text/plain")

    def _gateway(self, query: str, body: bytes) -> None:
        owner = self.server.owner
        owner.seen.append((self.command, self.path, self.headers.get("Content-Type", "")))
        reply = owner.sandbox.handle(query, body)
        if reply.delay and owner.closing.wait(reply.delay):
            return  # closing: hang up without an answer
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that stopped at its cap
            self.wfile.write(reply.body)

    def _add_trade(self, body: bytes) -> None:
        owner = self.server.owner
        try:
            fields: dict[str, Any] = json.loads(body)
            app_id = str(fields.pop("app_id", "") or owner.default_app_id)
            trade = owner.sandbox.add_trade(app_id, str(fields.pop("out_trade_no")), **fields)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._send(400, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode(), "application/json")
            return
        self._send(200, json.dumps(trade, ensure_ascii=False).encode(), "application/json")

    def _add_bill(self, body: bytes) -> None:
        owner = self.server.owner
        try:
            fields = json.loads(body)
        except ValueError as exc:  # not JSON, or not UTF-8
            self._refuse(f"the body is not JSON: {exc}")
            return
        app_id = str(fields.pop("app_id", "") or owner.default_app_id) if isinstance(fields, dict) else ""
        try:
            day, rows = owner.sandbox.post_bill(app_id, fields)
        except ValueError as exc:
            self._refuse(str(exc))
            return
        answer = {"app_id": app_id, "bill_date": day.isoformat(), "rows": rows}
        self._send(201, json.dumps(answer).encode(), "application/json")

    def _refuse(self, message: str) -> None:
        self._send(400, json.dumps({"error": message}, ensure_ascii=False).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # what the stand-in saw is in `sandbox.requests`


def _target(target: str) -> tuple[str, str]:
    """Path and query of a request target, in origin form (`/gateway.do?...`) or in the absolute form
    (`http://host/gateway.do?...`) that alipay-sdk-python sends."""
    parts = urlsplit(target)
    return parts.path, parts.query
