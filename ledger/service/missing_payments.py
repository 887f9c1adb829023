"""A payment Alipay's bill has and the ledger never booked (a `missing_in_ledger` finding), asked about through the
gateway: the answer is kept on the order and applied with a notification's rules (ledger.service.trade_query), and a
confirmed payment closes the finding."""

from __future__ import annotations

import logging

from eventsourcing.persistence import IntegrityError

from ledger.adapters.eventstore.store import LedgerStore
from ledger.domain.errors import LedgerError
from ledger.domain.reconciliation import Finding
from ledger.service.trade_query import QueryService

log = logging.getLogger(__name__)
CONFIRMED = "confirmed and booked"


def confirm_by_query(store: LedgerStore, queries: QueryService, finding: Finding) -> str:
    """Ask Alipay about the finding's trade (its order stream opened if the ledger never heard of it); CONFIRMED
    when the answer is the bill's trade and amount, paid, and the finding is closed; else what was found."""
    try:
        result = queries.query_now(finding.app_id, finding.out_trade_no, who="reconciliation", open_order=True)
    except LedgerError as exc:  # the gateway away, a conflict: the finding stays open, a rerun asks again
        log.warning("could not ask about %s: %s", finding.out_trade_no, exc)
        return f"not asked: {exc}"
    if result.error is not None:
        return f"no answer to believe: {result.error.reason}"
    bill = finding.bill or {}
    fields = result.answer.fields if result.answer else {}
    if not (result.status in ("PAID", "FINISHED") and str(fields.get("trade_no", "")) == bill.get("trade_no")
            and str(fields.get("total_amount", "")) == bill.get("total_amount")):
        said = fields.get("trade_status") or (result.answer.sub_code if result.answer else "")
        return f"not confirmed: Alipay answers {said}"
    finding.close(f"a trade query confirmed the payment (trade {fields.get('trade_no')}); it is booked",
                  by="trade query")
    try:
        store.save(finding)
    except IntegrityError:
        return "confirmed; the finding changed meanwhile"  # resolved by someone at that moment: theirs stands
    return CONFIRMED
