"""The read model's tables: what finance queries directly. Alembic migrates them (alembic/versions)."""

from __future__ import annotations

import sqlalchemy as sa

from ledger.adapters.sql.engine import UtcDateTime
from ledger.domain.limits import APP_ID_MAX, ID_MAX, NOTIFY_ID_MAX
from ledger.domain.message import MSG_METHOD_MAX

# Columns are sized from Alipay's limits (ledger.domain.limits), which the domain enforces: nothing that
# reaches a projection is ever truncated or refused for its length.
metadata = sa.MetaData()
MONEY = sa.Numeric(14, 2)  # one trade: at most 100,000,000.00
TOTAL = sa.Numeric(20, 2)  # a sum of many
MEMO_MAX = ID_MAX + 16  # "payment <trade_no>", "refund <out_biz_no>"
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = UtcDateTime()


order_status = sa.Table(
    "order_status", metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=False),  # the log position of the order's first event
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("auth_app_id", sa.String(ID_MAX), nullable=False),  # a service provider's merchant, or ""
    sa.Column("out_trade_no", sa.String(ID_MAX), nullable=False),
    sa.Column("order_id", sa.String(36), nullable=False),
    sa.Column("trade_no", sa.String(ID_MAX)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("registered", sa.Boolean, nullable=False),
    sa.Column("registered_amount", MONEY),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("notified_amount", MONEY),
    sa.Column("paid_amount", MONEY),
    sa.Column("receipt_amount", MONEY),
    sa.Column("refunded_amount", MONEY, nullable=False),
    sa.Column("amount_mismatch", sa.Boolean, nullable=False),
    sa.Column("anomaly", sa.Boolean, nullable=False),  # Alipay notified something not booked (AnomalyFound)
    sa.Column("buyer_id", sa.String(ID_MAX)),
    sa.Column("seller_id", sa.String(ID_MAX)),
    sa.Column("gmt_payment", UTC_TIME),
    sa.Column("first_callback_at", UTC_TIME),
    sa.Column("last_callback_at", UTC_TIME),
    sa.Column("callback_count", sa.Integer, nullable=False),
    # The bank leg of its refunds (the message service's RefundDepositedBack): the last one's status, S (the
    # money reached the buyer's bank card) or F (it went to the buyer's Alipay balance instead), the sum that
    # reached bank cards, and the bank's time of the last one.
    sa.Column("deposit_back_status", sa.String(1)),
    sa.Column("deposited_back_amount", MONEY),
    sa.Column("deposit_back_at", UTC_TIME),
    sa.Column("last_version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
    # Asking Alipay (trade queries): how the payment became known, the schedule's next step, what was answered.
    sa.Column("paid_via", sa.String(16)),  # notification or trade_query
    sa.Column("registered_at", UTC_TIME),
    sa.Column("query_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("query_step", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_query_at", UTC_TIME),
    sa.Column("query_taken_at", UTC_TIME),  # when a worker last took a step (it is left to it for a lease)
    sa.Column("last_query_at", UTC_TIME),
    sa.Column("last_query_result", sa.String(64)),  # the trade_status, the sub_code, or why no answer
    sa.Column("queries_exhausted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("app_id", "auth_app_id", "out_trade_no", name="uq_order_status_order"),
    sa.UniqueConstraint("order_id", name="uq_order_status_order_id"),
    sa.Index("ix_order_status_status_payment", "status", "gmt_payment"),
    sa.Index("ix_order_status_payment", "gmt_payment"),
    sa.Index("ix_order_status_next_query", "next_query_at"),
)


bills = sa.Table(
    "bills", metadata,  # every trade bill imported, as evidence (ledger.domain.bill); its bytes: bill_files
    sa.Column("bill_id", sa.String(36), primary_key=True),
    sa.Column("position", ID, nullable=False),
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("account", sa.String(ID_MAX), nullable=False),
    sa.Column("bill_date", sa.Date, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(300), nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("imported_at", UTC_TIME, nullable=False),
    sa.Column("payments", sa.Integer, nullable=False),
    sa.Column("refunds", sa.Integer, nullable=False),
    sa.Column("total_amount", TOTAL, nullable=False),
    sa.Column("receipt_amount", TOTAL, nullable=False),
    sa.Column("fee", TOTAL, nullable=False),
    sa.Column("share", TOTAL, nullable=False),
    sa.Column("net", TOTAL, nullable=False),
    sa.Index("ix_bills_app_date", "app_id", "bill_date"),
)


# Reconciliation with Alipay's bill (ledger.domain.reconciliation): the ledger's refunds one by one (what a bill's
# refund rows are matched with), a row per app and day matched, and every finding with its state.
refunds = sa.Table(
    "refunds", metadata,
    sa.Column("position", ID, primary_key=True, autoincrement=False),  # the RefundRecorded
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("auth_app_id", sa.String(ID_MAX), nullable=False),
    sa.Column("out_trade_no", sa.String(ID_MAX), nullable=False),
    sa.Column("out_biz_no", sa.String(ID_MAX), nullable=False),  # "" when the notification had none
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("refunded_at", UTC_TIME),  # gmt_refund
    sa.Column("day", sa.Date, nullable=False),  # China Standard Time, as the journal books it
    sa.Index("ix_refunds_order", "app_id", "out_trade_no"),
    sa.Index("ix_refunds_day", "app_id", "day"),
)

reconciliation_days = sa.Table(
    "reconciliation_days", metadata,
    sa.Column("app_id", sa.String(APP_ID_MAX), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),  # China Standard Time
    sa.Column("day_id", sa.String(36), nullable=False, unique=True),  # its stream
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("last_run_at", UTC_TIME),
    sa.Column("last_run_by", sa.String(200)),
    sa.Column("bill_id", sa.String(36)),
    sa.Column("bill_payments", sa.Integer),
    sa.Column("bill_refunds", sa.Integer),
    sa.Column("bill_total_amount", TOTAL),
    sa.Column("bill_refund_amount", TOTAL),
    sa.Column("bill_fee", TOTAL),
    sa.Column("bill_share", TOTAL),
    sa.Column("bill_net", TOTAL),
    sa.Column("ledger_payments", sa.Integer),
    sa.Column("ledger_payment_amount", TOTAL),
    sa.Column("ledger_refunds", sa.Integer),
    sa.Column("ledger_refund_amount", TOTAL),
    sa.Column("matched", sa.Integer),
    sa.Column("fees_posted", TOTAL, nullable=False),  # 服务费 posted to the journal from the day's bill
    sa.Column("next_bill", sa.Boolean),  # whether the next day's bill was there at the last run
    sa.Column("fetch_attempts", sa.Integer, nullable=False),
    sa.Column("fetch_state", sa.String(16)),  # waiting (retried at next_fetch_at), given_up
    sa.Column("fetch_error", sa.Text),
    sa.Column("next_fetch_at", UTC_TIME),
    sa.Column("updated_at", UTC_TIME, nullable=False),
)

reconciliation_findings = sa.Table(
    "reconciliation_findings", metadata,
    sa.Column("finding_id", sa.String(36), primary_key=True),
    sa.Column("position", ID, nullable=False),  # of its FindingOpened
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("key", sa.String(2 * ID_MAX + 16), nullable=False),
    sa.Column("out_trade_no", sa.String(ID_MAX), nullable=False),
    sa.Column("request_no", sa.String(ID_MAX), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open, carried, resolved, closed
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("bill_trade_no", sa.String(ID_MAX)),
    sa.Column("bill_amount", MONEY),  # 订单金额 as the bill writes it (a refund's negative)
    sa.Column("bill_fee", MONEY),
    sa.Column("bill_line", sa.Integer),
    sa.Column("ledger_trade_no", sa.String(ID_MAX)),
    sa.Column("ledger_status", sa.String(16)),
    sa.Column("ledger_amount", MONEY),  # the payment booked, or the refund's amount
    sa.Column("registered_amount", MONEY),
    sa.Column("opened_at", UTC_TIME, nullable=False),
    sa.Column("settled_at", UTC_TIME),
    sa.Column("settled_by", sa.String(200)),  # who resolved it, or what evidence closed it
    sa.Column("note", sa.Text),  # why: the resolver's note, or the closing reason
    sa.Column("last_version", sa.Integer, nullable=False),
    sa.Index("ix_reconciliation_findings_day", "app_id", "day", "kind"),
    sa.Index("ix_reconciliation_findings_state", "state", "opened_at"),
)


callback_log = sa.Table(
    "callback_log", metadata,
    sa.Column("position", ID, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("auth_app_id", sa.String(ID_MAX), nullable=False),
    sa.Column("out_trade_no", sa.String(ID_MAX), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("notify_id", sa.String(NOTIFY_ID_MAX), nullable=False),
    sa.Column("trade_status", sa.String(32), nullable=False),
    sa.Column("received_at", UTC_TIME, nullable=False),
    sa.Column("remote_addr", sa.String(64), nullable=False),
    sa.Column("duplicate", sa.Boolean, nullable=False),
    sa.Index("ix_callback_log_order", "app_id", "out_trade_no"),
)


daily_totals = sa.Table(
    "daily_totals", metadata,
    sa.Column("day", sa.Date, primary_key=True),  # China Standard Time
    sa.Column("app_id", sa.String(APP_ID_MAX), primary_key=True),
    sa.Column("auth_app_id", sa.String(ID_MAX), primary_key=True),  # each of a service provider's merchants
    sa.Column("payments_count", sa.Integer, nullable=False),
    sa.Column("payments_amount", TOTAL, nullable=False),
    sa.Column("refunds_count", sa.Integer, nullable=False),
    sa.Column("refunds_amount", TOTAL, nullable=False),
    sa.Column("net_amount", TOTAL, nullable=False),
)


journal_entries = sa.Table(
    "journal_entries", metadata,
    sa.Column("position", ID, primary_key=True, autoincrement=False),  # one entry per event
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("auth_app_id", sa.String(ID_MAX), nullable=False),
    sa.Column("out_trade_no", sa.String(ID_MAX), nullable=False),
    sa.Column("account", sa.String(32), nullable=False),
    sa.Column("amount", MONEY, nullable=False),  # debit positive, credit negative: an entry sums to zero
    sa.Column("memo", sa.String(MEMO_MAX), nullable=False),
)


# Every recorded message of Alipay's message service, in an order's stream or in one of its own.
messages = sa.Table(
    "messages", metadata,
    sa.Column("position", ID, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("auth_app_id", sa.String(ID_MAX), nullable=False),  # a service provider's merchant, or ""
    sa.Column("notify_id", sa.String(NOTIFY_ID_MAX), nullable=False),
    sa.Column("msg_method", sa.String(MSG_METHOD_MAX), nullable=False),
    sa.Column("out_trade_no", sa.String(ID_MAX)),  # the order biz_content names, if any
    sa.Column("stream_id", sa.String(36), nullable=False),  # the order's, or the message's own
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("received_at", UTC_TIME, nullable=False),
    sa.Column("remote_addr", sa.String(64), nullable=False),
    sa.Column("duplicate", sa.Boolean, nullable=False),
    sa.Column("applied", sa.Boolean, nullable=False),  # it changed its order; false: recorded only
    sa.UniqueConstraint("stream_id", "version", name="uq_messages_event"),
    sa.Index("ix_messages_method", "msg_method", "position"),
    sa.Index("ix_messages_received", "received_at"),
)


deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("order_id", sa.String(36), primary_key=True),
    sa.Column("change", sa.String(96), primary_key=True),  # payment, refund:<out_biz_no>, finished, closed
    sa.Column("app_id", sa.String(APP_ID_MAX), nullable=False),
    sa.Column("auth_app_id", sa.String(ID_MAX), nullable=False),
    sa.Column("out_trade_no", sa.String(ID_MAX), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_retry_at", UTC_TIME),
    sa.Column("started_at", UTC_TIME),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
    sa.Index("ix_deliveries_state", "state", "next_retry_at"),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("alert_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raised_at", UTC_TIME, nullable=False),
    sa.Column("sent_to", sa.String(64), nullable=False),  # comma-separated robots it reached
    sa.Column("status", sa.String(16), nullable=False),  # waiting, sent, or no_robots (none configured)
    sa.Index("ix_alerts_raised", "raised_at"),
)

projection_positions = sa.Table(
    "projection_positions", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", ID, nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
)

PROJECTED = {t.name: t for t in (order_status, callback_log, daily_totals, journal_entries, deliveries, alerts,
                                 messages, refunds, reconciliation_days, reconciliation_findings)}

# Streams the read side holds back: an event that no projection step could apply (after its retries) parks
# its stream here, with its later events, while every other stream goes on (projections.runner).
parked_streams = sa.Table(
    "parked_streams", metadata,
    sa.Column("stream_id", sa.String(36), primary_key=True),
    sa.Column("position", ID, nullable=False),  # the first event held back
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("positions", sa.Text, nullable=False),  # JSON: each projection's position when it was parked
    sa.Column("parked_at", UTC_TIME, nullable=False),
)
