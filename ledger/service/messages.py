"""Recording a verified message of Alipay's message service (ledger.domain.message), blocking.

Messages are rare (a few per refund, not one per payment), so each is saved alone, as the operators' commands
are: under the per-order lock, by `save_with_retries` with the version check as the fence, and not through the
group commit, which is tuned for the flood of trade notifications. A message the ledger applies to an order
(a deposit-back) goes into that order's stream if the ledger holds the order; anything else (an unknown
msg_method, an order the ledger has never seen) goes into a stream of its own per (app_id, notify_id), which
keeps every stream small and needs no lock beyond the version check's.
"""

from __future__ import annotations

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks.holds import lock_key
from ledger.adapters.metrics import Metrics
from ledger.domain.message import AppMessage
from ledger.domain.order import Order
from ledger.service.ports import OrderLock, RecordedMessage, VerifiedMessage
from ledger.service.saving import save_with_retries


def record_message(store: LedgerStore, lock: OrderLock, verified: VerifiedMessage, *, max_copies: int,
                   metrics: Metrics) -> RecordedMessage:
    """Record the message where it belongs and apply it once; raises RetryLater (nothing recorded) when the
    lock or the event store does not answer."""
    message, v = verified.message, verified
    if message.concerns_order:
        def on_order(order: Order) -> tuple[bool, bool]:
            applied = len(order.deposit_backs)
            recorded = order.receive_message(message, v.params, delivery_id=v.delivery_id, received_at=v.received_at,
                                             remote_addr=v.remote_addr, max_copies=max_copies, key=v.key)
            return recorded, len(order.deposit_backs) > applied

        with lock.hold(lock_key(message.app_id, message.out_trade_no, message.merchant)) as hold:
            # No `create`: a message opens no order (a deposit-back for an order the ledger never saw is kept
            # in a stream of its own, below, and listed for operators).
            saved = save_with_retries(store, Order.create_id(message.app_id, message.out_trade_no, message.merchant),
                                      on_order, metrics=metrics)
        if saved is not None:
            recorded, applied = saved.decision
            if not recorded:
                metrics.copies_not_recorded.inc()
            return RecordedMessage(saved.order.id, message.notify_id, message.out_trade_no, saved.order.version,
                                   applied, recorded, hold.degraded, saved.position)

    def on_its_own(stream: AppMessage) -> bool:
        return stream.receive(message, v.params, delivery_id=v.delivery_id, received_at=v.received_at,
                              remote_addr=v.remote_addr, max_copies=max_copies, key=v.key)

    alone = save_with_retries(store, AppMessage.create_id(message.app_id, message.notify_id), on_its_own,
                              metrics=metrics, create=lambda: AppMessage(
                                  app_id=message.app_id, notify_id=message.notify_id, msg_method=message.msg_method,
                                  merchant=message.merchant))
    assert alone is not None  # there is a `create`
    if not alone.decision:
        metrics.copies_not_recorded.inc()
    return RecordedMessage(alone.order.id, message.notify_id, "", alone.order.version, False, alone.decision,
                           False, alone.position)
