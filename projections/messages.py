"""messages: one row per recorded message of Alipay's message service (ledger.domain.message), for operators.

A message is `applied` when its order's change followed it (a RefundDepositedBack, saved with it, at the
next version of the same stream); every other message is recorded only. Both events are in the log, so a
rebuild gives the same rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ledger.domain.message import message_merchant
from projections.common import Batch, insert_many
from projections.tables import messages as t


class MessagesProjection:
    name = "messages"
    tables = (t,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        applied_before: list[tuple[str, int]] = []  # messages of earlier batches whose change is in this one
        for position, e in events:
            kind = type(e).__name__
            if kind == "MessageReceived":
                stream = str(e.originator_id)
                rows[(stream, e.originator_version)] = {
                    "position": position, "app_id": e.params.get("app_id", ""),
                    "auth_app_id": message_merchant(e.params), "notify_id": e.notify_id, "msg_method": e.msg_method,
                    "out_trade_no": e.out_trade_no or None, "stream_id": stream, "version": e.originator_version,
                    "received_at": e.received_at, "remote_addr": e.remote_addr, "duplicate": e.duplicate,
                    "applied": False}
            elif kind == "RefundDepositedBack":
                message = (str(e.originator_id), e.originator_version - 1)
                if message in rows:
                    rows[message]["applied"] = True
                else:
                    applied_before.append(message)
        insert_many(conn, t, list(rows.values()))
        for stream, version in applied_before:
            conn.execute(t.update().where(t.c.stream_id == stream, t.c.version == version).values(applied=True))
