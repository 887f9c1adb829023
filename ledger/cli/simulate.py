"""`ledger keygen` and `ledger simulate`: act as Alipay's sandbox, so a newcomer sees the service work."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from pathlib import Path

from ledger.alipay.sandbox import (
    encode_form,
    generate_key_pair,
    load_private_key,
    message_notification,
    sign_params,
    trade_notification,
)

PRIVATE_NAME, PUBLIC_NAME = "alipay_private.pem", "alipay_public.txt"


def keygen(directory: Path) -> Path:
    """Write a sandbox 'Alipay' key pair; the public half is what LEDGER_ALIPAY_PUBLIC_KEY_FILE points at."""
    directory.mkdir(parents=True, exist_ok=True)
    private_pem, public_b64 = generate_key_pair()
    private = directory / PRIVATE_NAME
    private.write_bytes(private_pem)
    private.chmod(0o600)
    (directory / PUBLIC_NAME).write_text(public_b64 + "\n")
    return directory / PUBLIC_NAME


def post(url: str, body: bytes, timeout: float = 10) -> tuple[int, str]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - checked above
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own URL
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def simulate(url: str, private_key_path: Path, app_id: str, *, out_trade_no: str | None = None,
             repeat: int = 1, msg_method: str | None = None, biz_content: str = "{}",
             **fields: str | None) -> list[tuple[int, str]]:
    """Sign one notification exactly as Alipay does and post it `repeat` times (as Alipay re-sends). With
    `msg_method`, a message of the message service carrying `biz_content` instead of a trade notification."""
    key = load_private_key(private_key_path.read_bytes())
    if msg_method:
        params = message_notification(app_id, msg_method, biz_content, charset=fields.get("charset") or "utf-8")
    else:
        params = trade_notification(app_id, out_trade_no or f"SIM{uuid.uuid4().hex[:16].upper()}",
                                    **{k: v for k, v in fields.items() if v is not None})
    body = encode_form(sign_params(params, key))
    return [post(url, body) for _ in range(repeat)]
