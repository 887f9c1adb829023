"""Asking Alipay about a trade (`alipay.trade.query`) when its notification does not come: the ledger's
"payment sync". Each answer is recorded as received and applied with a notification's rules.

A scheduled step is taken first (`QueryStepTaken`, fenced by the stream's version check, so two workers never
ask about one order twice for one step), then asked outside any commit, then recorded. A worker that dies
after taking a step leaves it taken: after the lease another may take it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from ledger.adapters.eventstore.store import LedgerStore
from ledger.adapters.locks.holds import lock_key
from ledger.config import AlipayApp
from ledger.domain.errors import GatewayError, NothingToDo, OrderNotFound, UnknownApp
from ledger.domain.order import Order
from ledger.domain.trade_query import MANUAL, METHOD, SCHEDULED, SYSTEM_ERRORS, QueryAnswer
from ledger.service.ports import Gateway, GatewayAnswer, OrderLock
from ledger.service.saving import save_with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queried:
    """What one query found and what it left the order as."""

    out_trade_no: str
    answer: GatewayAnswer | None  # None when no answer could be believed (`error` says why)
    error: GatewayError | None
    status: str  # the order's status after the answer was applied
    version: int
    position: int

    @property
    def trade_status(self) -> str:
        return str(self.answer.fields.get("trade_status", "")) if self.answer else ""


class QueryService:
    def __init__(self, store: LedgerStore, lock: OrderLock, gateway: Gateway, apps: Mapping[str, AlipayApp], *,
                 schedule: Sequence[float], lease: timedelta, clock: Callable[[], datetime]) -> None:
        """`schedule`: the delays of the scheduled steps (LEDGER_QUERY_SCHEDULE); `lease`: how long a taken
        step is left to its worker (longer than a gateway call's deadline)."""
        self.store, self.lock, self.gateway, self.apps = store, lock, gateway, apps
        self.schedule, self.lease, self.clock = tuple(schedule), lease, clock

    def queryable(self, app_id: str, merchant: str = "") -> bool:
        """Whether the ledger can ask Alipay about this trade: it holds the app's private key and, for a
        service provider's merchant, that merchant's own app_auth_token."""
        app = self.apps.get(app_id)
        return (app is not None and app.private_key is not None
                and (not merchant or merchant in app.app_auth_tokens))

    def run_step(self, order_id: str, step: int) -> str:
        """Scheduled step `step` of an order (the `query` actor): taken, asked, recorded; or `not_due` when
        the order no longer waits, the step is done or beyond the schedule, or another worker holds it."""
        if not 0 <= step < len(self.schedule):
            return "not_due"

        def take(order: Order) -> bool:
            return self.queryable(order.app_id, order.merchant) and order.take_query_step(step, self.clock(),
                                                                                          self.lease)

        taken = save_with_retries(self.store, UUID(order_id), take)
        if taken is None or not taken.decision:
            return "not_due"
        order = taken.order
        result = self._ask_and_record(order.app_id, order.out_trade_no, order.merchant, step=step,
                                      source=SCHEDULED, who="schedule", last=step == len(self.schedule) - 1)
        outcome = result.error.reason if result.error else result.trade_status
        log.info("query step %s of order %s: %s", step, order.out_trade_no, outcome or "no trade yet")
        return "failed" if result.error else "answered"

    def query_now(self, app_id: str, out_trade_no: str, *, who: str, merchant: str = "",
                  open_order: bool = False) -> Queried:
        """Someone asks (an operator, the merchant, `ledger query`, reconciliation): asked at once, recorded,
        applied. `open_order`: an order the ledger has never heard of gets its stream (reconciliation found the
        trade on Alipay's bill); otherwise OrderNotFound."""
        if app_id not in self.apps:
            raise UnknownApp(f"no Alipay app {app_id!r} is configured")
        if not self.queryable(app_id, merchant):
            prefix = self.apps[app_id].settings_prefix
            missing = (f"{prefix}APP_AUTH_TOKENS has no token for merchant {merchant}" if merchant
                       and self.apps[app_id].private_key is not None else f"{prefix}APP_PRIVATE_KEY is not set")
            raise NothingToDo(f"cannot ask Alipay about this trade of app {app_id}: {missing}")
        if not open_order and self.store.get_order(Order.create_id(app_id, out_trade_no, merchant)) is None:
            raise OrderNotFound(f"no order {out_trade_no} of app {app_id}")
        return self._ask_and_record(app_id, out_trade_no, merchant, step=None, source=MANUAL, who=who, last=False,
                                    open_order=open_order)

    def _ask_and_record(self, app_id: str, out_trade_no: str, merchant: str, *, step: int | None, source: str,
                        who: str, last: bool, open_order: bool = False) -> Queried:
        answer, error = self._ask(app_id, out_trade_no, merchant)
        queried_at, answer_id = self.clock(), uuid4().hex

        def record(order: Order) -> None:
            if answer is not None:
                order.record_query(QueryAnswer.of(answer.code, answer.sub_code, answer.fields), text=answer.text,
                                   key=answer.key, step=step, source=source, who=who, queried_at=queried_at,
                                   last=last, answer_id=answer_id)
            elif error is not None:
                order.record_query_failure(reason=error.reason, retryable=error.retryable, error=str(error),
                                           text=error.text, step=step, source=source, who=who,
                                           queried_at=queried_at, last=last, answer_id=answer_id)

        with self.lock.hold(lock_key(app_id, out_trade_no, merchant)):
            saved = save_with_retries(self.store, Order.create_id(app_id, out_trade_no, merchant), record,
                                      create=(lambda: Order(app_id, out_trade_no, merchant)) if open_order else None)
        if saved is None:
            raise OrderNotFound(f"no order {out_trade_no} of app {app_id}")
        return Queried(out_trade_no, answer, error, saved.order.status.value, saved.order.version, saved.position)

    def _ask(self, app_id: str, out_trade_no: str, merchant: str) -> tuple[GatewayAnswer | None, GatewayError | None]:
        """The gateway's verified answer about this trade, or why there is none to apply: no answer in time,
        not believed, about another trade, or not usable as a notification's facts would be."""
        try:
            answer = self.gateway.call(app_id, METHOD, {"out_trade_no": out_trade_no}, merchant=merchant)
        except GatewayError as exc:
            return None, self._without_secrets(app_id, exc)
        read = QueryAnswer.of(answer.code, answer.sub_code, answer.fields)
        if answer.sub_code in SYSTEM_ERRORS:
            return None, GatewayError(f"the gateway could not answer now ({answer.sub_code})", reason="unavailable",
                                      retryable=True, text=answer.text, code=answer.code, sub_code=answer.sub_code)
        if answer.ok and read.out_trade_no != out_trade_no:
            # Signed by Alipay, but about another trade (a replay, a proxy's mix-up): never applied to this one.
            return None, GatewayError(f"the answer is about out_trade_no {read.out_trade_no!r}, not {out_trade_no!r}"
                                      [:300], reason="mismatched", retryable=False, text=answer.text)
        if read.problem:
            return None, GatewayError(f"the answer cannot be applied: {read.problem}"[:300], reason="unusable",
                                      retryable=False, text=answer.text)
        return answer, None

    def _without_secrets(self, app_id: str, error: GatewayError) -> GatewayError:
        """The error with no app_auth_token in its text: a refusal quotes the string the gateway verified, and
        what is recorded is read by auditors and operators."""
        app = self.apps.get(app_id)
        text = error.text
        for token in (str(secret) for secret in (app.app_auth_tokens.values() if app else ())):
            text = text.replace(token, "(hidden)")
        if text == error.text:
            return error
        return GatewayError(str(error), reason=error.reason, retryable=error.retryable, text=text, code=error.code,
                            sub_code=error.sub_code)


def answer_summary(result: Queried) -> dict[str, Any]:
    """What `POST /api/orders/{no}/query` and `ledger query` show of a query."""
    body: dict[str, Any] = {"out_trade_no": result.out_trade_no, "status": result.status,
                            "version": result.version, "position": result.position}
    if result.answer is not None:
        fields = result.answer.fields
        body.update(answered=True, code=result.answer.code, sub_code=result.answer.sub_code or None,
                    trade_status=fields.get("trade_status"), trade_no=fields.get("trade_no"),
                    total_amount=fields.get("total_amount"), key=result.answer.key)
    elif result.error is not None:
        body.update(answered=False, error=result.error.reason, detail=str(result.error),
                    retryable=result.error.retryable)
    return body
