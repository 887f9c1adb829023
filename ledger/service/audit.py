"""`ledger audit verify`: re-verify Alipay's signature on every recorded callback, as an auditor would.

A stored callback keeps every parameter exactly as received, so its signature still verifies with Alipay's
public key; one that does not is evidence that the record was altered after it was written. Each callback is
verified with the key that verified it on arrival (its recorded fingerprint, `key`), found among the app's
configured keys or the retired ones an auditor gives; one recorded before fingerprints were (`key` empty)
with every key known.
The messages of the message service (MessageReceived, in an order's stream or in one of their own) are
Alipay-signed evidence too, kept the same way, and checked with them; so are the gateway's answers to trade
queries (TradeQueried), kept as received: their signature is over the answer's own text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.utils import get_topic

from ledger.adapters.eventstore.store import LedgerStore
from ledger.alipay.keyring import AlipayKey, KeyRing
from ledger.alipay.response import verify_answer
from ledger.alipay.signature import verify
from ledger.config import AlipayApp
from ledger.domain.errors import GatewayError, SignatureInvalid
from ledger.domain.message import AppMessage
from ledger.domain.order import Order
from ledger.domain.trade_query import METHOD, QueryAnswer

CALLBACK_TOPIC = get_topic(Order.CallbackReceived)  # type: ignore[attr-defined]
MESSAGE_TOPICS = [get_topic(Order.MessageReceived), get_topic(AppMessage.MessageReceived)]  # type: ignore[attr-defined]
ANSWER_TOPIC = get_topic(Order.TradeQueried)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Finding:
    position: int
    app_id: str
    out_trade_no: str
    notify_id: str
    problem: str


def recorded_callbacks_that_fail(store: LedgerStore, apps: Mapping[str, AlipayApp], *,
                                 counted: list[int] | None = None, page: int = 1000,
                                 given: Sequence[AlipayKey] = ()) -> Iterator[Finding]:
    """Every recorded callback whose signature does not verify, or whose verifying key is not known: neither
    configured for its app nor `given` (retired keys the auditor keeps); `counted` gets the number checked."""
    start, checked = 0, 0
    topics = [CALLBACK_TOPIC, *MESSAGE_TOPICS, ANSWER_TOPIC]
    while batch := store.recorder.select_notifications(start, page, topics=topics, inclusive_of_start=False):
        for notification in batch:
            checked += 1
            try:
                event = store.mapper.to_domain_event(notification)
            except Exception as exc:  # an altered record may not even decode
                yield Finding(notification.id, "", "", "", f"unreadable: {type(exc).__name__}")
                continue
            if notification.topic == ANSWER_TOPIC:
                if finding := _answer_finding(notification.id, event, apps, given):
                    yield finding
                continue
            params: dict[str, str] = getattr(event, "params", {})  # a CallbackReceived or MessageReceived
            # A message names its order in biz_content: the event holds the one it was recorded for, if any.
            out_trade_no = params.get("out_trade_no") or str(getattr(event, "out_trade_no", ""))
            found = Finding(notification.id, params.get("app_id", ""), out_trade_no,
                            str(getattr(event, "notify_id", "")), "")
            app = apps.get(found.app_id)
            problem = _problem(params, str(getattr(event, "key", "")), getattr(event, "received_at", None),
                               [*(app.keys.keys if app else ()), *given])
            if problem:
                yield Finding(**{**found.__dict__, "problem": problem})
        start = batch[-1].id
    if counted is not None:
        counted.append(checked)


def _problem(params: dict[str, str], recorded: str, received_at: datetime | None, known: list[AlipayKey]) -> str:
    """Why the callback does not verify with the key recorded as verifying it (none recorded: with any key
    known); "" when it does."""
    on = f"{received_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if received_at else "an unknown date"
    if recorded:
        key = next((key for key in known if key.fingerprint == recorded), None)
        if key is None:
            return f"verified on {on} by key {recorded}, which is neither configured nor given with --key"
        known = [key]
    if not known:
        return "no Alipay key configured for this app_id"
    try:
        verify(params, KeyRing(tuple(known)))
    except SignatureInvalid as exc:
        if recorded:  # it verified with this key on arrival: it was changed since
            return f"altered: {exc} (key {recorded}, which verified it on {on})"
        return (f"{exc}, nor with any key given with --key: recorded on {on}, before the verifying key was named, "
                "it was altered or its key is neither configured nor given")
    return ""


def _answer_finding(position: int, event: object, apps: Mapping[str, AlipayApp],
                    given: Sequence[AlipayKey]) -> Finding | None:
    """A recorded trade-query answer whose signature no longer verifies with the key that verified it (found by
    its fingerprint among every app's keys and those given)."""
    text, recorded = str(getattr(event, "text", "")), str(getattr(event, "key", ""))
    known = [key for key in [*(key for app in apps.values() for key in app.keys.keys), *given]
             if key.fingerprint == recorded]
    app_id = str(getattr(event, "app_id", ""))
    found = Finding(position, app_id, _out_trade_no(text), f"trade query at {getattr(event, 'queried_at', '')}", "")
    if not known:
        return Finding(**{**found.__dict__, "problem": f"a trade-query answer verified by key {recorded}, which is "
                                                       "neither configured nor given with --key"})
    try:
        verified = verify_answer(app_id, text, METHOD, KeyRing(tuple(known[:1])))
    except GatewayError as exc:
        return Finding(**{**found.__dict__, "problem": f"altered trade-query answer: {exc}"[:500]})
    # The event's own fields are what the order replays and the API shows: they must be what Alipay signed, and
    # the answer must be about the order whose stream holds it.
    said = QueryAnswer.of(verified.code, verified.sub_code, verified.fields)
    recorded_as = {name: getattr(event, name, None) for name in ("code", "sub_code", "trade_status", "trade_no",
                                                                  "total_amount")}
    if recorded_as != {name: getattr(said, name) for name in recorded_as}:
        return Finding(**{**found.__dict__, "problem": f"altered trade-query event: it records {recorded_as}, the "
                                                       f"signed answer says otherwise"[:500]})
    if said.out_trade_no and Order.create_id(app_id, said.out_trade_no, str(getattr(event, "merchant", ""))) \
            != getattr(event, "originator_id", None):
        return Finding(**{**found.__dict__, "problem": "a trade-query answer about another order, in this "
                                                       "order's stream"})
    return None


def _out_trade_no(text: str) -> str:
    """The order the answer is about, read loosely: for the finding's name only (the check is verify_answer's)."""
    try:
        body = json.loads(text)
        answer: dict[str, object] = next((v for name, v in body.items() if name.endswith("_response")), {})
        return str(answer.get("out_trade_no", ""))
    except (ValueError, AttributeError, TypeError):
        return ""
