"""Any interleaving and duplication of one trade's notifications ends the order in the same state."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.notice import TradeNotice
from ledger.domain.order import Order
from tests.support.notices import notification


@st.composite
def trades(draw: st.DrawFn) -> tuple[str | None, list[dict[str, str]]]:
    """A registered amount (or none) and every notification Alipay would send for one plausible trade."""
    total = Decimal(draw(st.integers(100, 100_000))) / 100
    registered = draw(st.sampled_from([None, f"{total:.2f}", f"{total + 1:.2f}"]))
    paid = draw(st.booleans())
    if not paid:
        ending = draw(st.sampled_from([[], ["TRADE_CLOSED"]]))
        return registered, [notification("T", trade_status=s, total_amount=f"{total:.2f}") for s in
                            ["WAIT_BUYER_PAY", *ending]]
    notes = [notification("T", total_amount=f"{total:.2f}")]
    cents = sorted(set(draw(st.lists(st.integers(1, int(total * 100) - 1), max_size=3))))
    for i, cumulative in enumerate(cents):
        notes.append(notification("T", total_amount=f"{total:.2f}", refund_fee=f"{Decimal(cumulative) / 100:.2f}",
                                  out_biz_no=f"R{i}"))
    ending = draw(st.sampled_from(["none", "finished", "refunded"]))
    if ending == "finished":
        notes.append(notification("T", trade_status="TRADE_FINISHED", total_amount=f"{total:.2f}"))
    elif ending == "refunded":
        notes.append(notification("T", trade_status="TRADE_CLOSED", total_amount=f"{total:.2f}",
                                  refund_fee=f"{total:.2f}", out_biz_no="RFULL"))
    return registered, notes


def replay(registered: str | None, deliveries: list[dict[str, str]]) -> dict[str, Any]:
    order = Order(app_id="2021000000000001", out_trade_no="T")
    if registered:
        order.register(Decimal(registered), "")
    for n, params in enumerate(deliveries):
        order.receive(TradeNotice.from_params(params), params, delivery_id=str(n),
                      received_at=datetime.now(UTC), remote_addr="")
    kinds = [type(e).__name__ for e in order.collect_events()]
    # State changes are facts: each happens at most once whatever the order of arrival.
    assert kinds.count("PaymentConfirmed") <= 1 and kinds.count("TradeClosed") <= 1
    assert kinds.count("CallbackReceived") == len(deliveries)
    return {"status": order.status, "payment": order.payment, "refunds": order.refunds,
            "refunded": order.refunded, "finished": order.finished, "close_reason": order.close_reason,
            "mismatched": sorted(set(order.mismatched_amounts)), "notify_ids": set(order.deliveries)}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), trade=trades())
def test_any_interleaving_and_duplication_of_a_trades_notifications_ends_in_the_same_state(
        data: st.DataObject, trade: tuple[str | None, list[dict[str, str]]]) -> None:
    registered, notes = trade
    arrival = data.draw(st.permutations(notes))
    copies = data.draw(st.lists(st.sampled_from(notes), max_size=6))
    shuffled = data.draw(st.permutations(arrival + copies))
    assert replay(registered, shuffled) == replay(registered, notes)


@settings(max_examples=100, deadline=None)
@given(trade=trades())
def test_refunded_amount_never_exceeds_the_largest_refund_fee_notified(
        trade: tuple[str | None, list[dict[str, str]]]) -> None:
    registered, notes = trade
    state = replay(registered, list(reversed(notes)))
    fees = [Decimal(n["refund_fee"]) for n in notes if n.get("refund_fee")]
    assert state["refunded"] == (max(fees) if fees and state["payment"] else Decimal("0.00"))
