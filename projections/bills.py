"""bills: one row per trade bill imported (BillImported), for finance and auditors: which day, whose account,
the file's hash and size, and the detail's counts and sums."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from projections.common import Batch, insert_many
from projections.tables import bills as t


class BillsProjection:
    name = "bills"
    tables = (t,)

    def apply(self, conn: sa.Connection, events: Batch) -> None:
        rows = [{"bill_id": str(e.originator_id), "position": position, "app_id": e.app_id, "account": e.account,
                 "bill_date": date.fromisoformat(e.bill_date), "sha256": e.sha256, "size": e.size,
                 "source": e.source[:300], "who": e.who[:200], "imported_at": e.imported_at,
                 "payments": e.payments, "refunds": e.refunds, "total_amount": e.total_amount,
                 "receipt_amount": e.receipt_amount, "fee": e.fee, "share": e.share, "net": e.net}
                for position, e in events if type(e).__qualname__ == "Bill.BillImported"]
        insert_many(conn, t, rows)
