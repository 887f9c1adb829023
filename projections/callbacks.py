"""callback_log: one row per recorded callback, for finance's counts and operators' searches."""

from __future__ import annotations

import sqlalchemy as sa

from ledger.domain.notice import merchant_of
from projections.common import Batch, insert_many
from projections.tables import callback_log as t


class CallbackLogProjection:
    name = "callback_log"
    tables = (t,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        rows = [{"position": position, "app_id": e.params.get("app_id", ""),
                 "auth_app_id": merchant_of(e.params.get("app_id", ""), e.params.get("auth_app_id", "")),
                 "out_trade_no": e.params.get("out_trade_no", ""), "version": e.originator_version,
                 "notify_id": e.notify_id, "trade_status": e.params.get("trade_status", ""),
                 "received_at": e.received_at, "remote_addr": e.remote_addr, "duplicate": e.duplicate}
                for position, e in events if type(e).__name__ == "CallbackReceived"]
        insert_many(conn, t, rows)
