"""A day's trades as Alipay's bill lists them (ledger.alipay.sandbox_bill builds the file): two payments and a
refund of one, on the sandbox bill's day."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from ledger.alipay.request import CHINA_STANDARD_TIME
from ledger.alipay.sandbox_bill import BillTrade

AT = datetime(2019, 9, 16, 10, 0, tzinfo=CHINA_STANDARD_TIME)


def trades() -> list[BillTrade]:
    return [BillTrade("payment", "T-1", "2019091622001400001", Decimal("88.00"), AT, fee=Decimal("0.53")),
            BillTrade("payment", "T-2", "2019091622001400002", Decimal("10.00"), AT + timedelta(hours=1),
                      fee=Decimal("0.06")),
            BillTrade("refund", "T-1", "2019091622001400001", Decimal("8.00"), AT + timedelta(hours=2),
                      fee=Decimal("0.05"), refund_request_no="RF-1")]
