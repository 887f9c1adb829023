"""An Alipay trade bill imported as evidence: one stream per file, named by the SHA-256 of its bytes.

The same file imported twice finds its stream there already and records nothing new. The bytes themselves are
kept beside the log, addressed by the same hash (ledger.adapters.bills), so an auditor gets the exact file back
and can check it against the hash the event recorded.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

BILL_NAMESPACE = UUID("5d3f2a9e-8c41-5b6f-a2d7-1e9c0b4f7a63")
BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
# No bill (yet) for the day: the documents' spelling and the live gateway's; both are accepted.
BILL_NOT_YET = frozenset({"BILL_NOT_EXIST", "isp.bill_not_exist"})


class Bill(Aggregate):
    @staticmethod
    def create_id(sha256: str) -> UUID:
        return uuid5(BILL_NAMESPACE, f"alipay-trade-bill/{sha256}")

    @event("BillImported")
    def __init__(self, sha256: str, size: int, source: str, who: str, app_id: str, account: str, bill_date: str,
                 period_start: datetime, period_end: datetime, payments: int, refunds: int,
                 total_amount: Decimal, receipt_amount: Decimal, fee: Decimal, share: Decimal, net: Decimal,
                 imported_at: datetime) -> None:
        """`source`: how it came (`gateway`, `file NAME`, `api`); `bill_date`: its China-Standard-Time day, ISO;
        the counts and sums are the detail's, which matched the bill's own summary."""
        self.sha256, self.size, self.source, self.who, self.app_id = sha256, size, source, who, app_id
        self.account, self.bill_date = account, bill_date
        self.period_start, self.period_end = period_start, period_end
        self.payments, self.refunds = payments, refunds
        self.total_amount, self.receipt_amount, self.fee, self.share, self.net = (
            total_amount, receipt_amount, fee, share, net)
        self.imported_at = imported_at
