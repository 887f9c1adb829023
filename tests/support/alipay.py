"""A sandbox 'Alipay': one key pair per test session, signing notifications exactly as Alipay does."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ledger.alipay.sandbox import (
    deposit_back_message,
    encode_form,
    generate_key_pair,
    load_private_key,
    message_notification,
    sign_params,
    trade_notification,
)

APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"


@dataclass(frozen=True)
class SandboxAlipay:
    private_key: RSAPrivateKey
    public_key_b64: str
    app_id: str = APP_ID

    @classmethod
    def new(cls) -> SandboxAlipay:
        pem, public = generate_key_pair()
        return cls(load_private_key(pem), public)

    def params(self, out_trade_no: str, *, app_id: str | None = None, **fields: str | None) -> dict[str, str]:
        return sign_params(trade_notification(app_id or self.app_id, out_trade_no, **fields), self.private_key)

    def body(self, out_trade_no: str, *, app_id: str | None = None, **fields: str | None) -> bytes:
        return encode_form(self.params(out_trade_no, app_id=app_id, **fields))

    def message(self, msg_method: str, biz_content: dict[str, object] | str, *, app_id: str | None = None,
                **fields: str | None) -> bytes:
        """A message of the message service, signed and encoded as Alipay posts it."""
        return encode_form(sign_params(message_notification(app_id or self.app_id, msg_method, biz_content,
                                                            **fields), self.private_key))

    def deposit_back(self, out_trade_no: str, out_request_no: str, **fields: str | None) -> bytes:
        """`alipay.trade.refund.depositback.completed` for the order's refund `out_request_no`, signed."""
        return encode_form(sign_params(deposit_back_message(self.app_id, out_trade_no, out_request_no, **fields),
                                       self.private_key))

    def env(self) -> dict[str, str]:
        return {"LEDGER_ALIPAY_APP_ID": self.app_id, "LEDGER_ALIPAY_PUBLIC_KEY": self.public_key_b64}
