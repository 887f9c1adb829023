"""callback_log: one row per recorded callback, for finance's counts and operators' searches."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from projections.tables import callback_log as t


class CallbackLogProjection:
    name = "callback_log"
    tables = (t,)

    def apply(self, conn: sa.Connection, event: Any, position: int) -> None:
        if type(event).__name__ != "CallbackReceived":
            return
        params = event.params
        conn.execute(t.insert().values(
            position=position, app_id=params.get("app_id", ""), out_trade_no=params.get("out_trade_no", ""),
            version=event.originator_version, notify_id=event.notify_id,
            trade_status=params.get("trade_status", ""), received_at=event.received_at,
            remote_addr=event.remote_addr, duplicate=event.duplicate))
