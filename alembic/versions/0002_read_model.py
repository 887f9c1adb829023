"""The read model: order_status, callback_log, daily_totals, journal_entries and their positions.

Revision ID: 0002
Revises: 0001
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
PROJECTIONS = ("order_status", "callback_log", "daily_totals", "journal_entries")


def upgrade() -> None:
    op.create_table(
        "order_status",
        sa.Column("id", ID, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("trade_no", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("registered_amount", MONEY),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("notified_amount", MONEY),
        sa.Column("paid_amount", MONEY),
        sa.Column("receipt_amount", MONEY),
        sa.Column("refunded_amount", MONEY, nullable=False),
        sa.Column("amount_mismatch", sa.Boolean, nullable=False),
        sa.Column("buyer_id", sa.String(32)),
        sa.Column("seller_id", sa.String(32)),
        sa.Column("gmt_payment", TZ),
        sa.Column("first_callback_at", TZ),
        sa.Column("last_callback_at", TZ),
        sa.Column("callback_count", sa.Integer, nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("app_id", "out_trade_no", name="uq_order_status_order"),
        sa.UniqueConstraint("order_id", name="uq_order_status_order_id"),
    )
    op.create_index("ix_order_status_status_payment", "order_status", ["status", "gmt_payment"])
    op.create_index("ix_order_status_payment", "order_status", ["gmt_payment"])
    op.create_table(
        "callback_log",
        sa.Column("position", ID, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("notify_id", sa.String(64), nullable=False),
        sa.Column("trade_status", sa.String(32), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("duplicate", sa.Boolean, nullable=False),
    )
    op.create_index("ix_callback_log_order", "callback_log", ["app_id", "out_trade_no"])
    op.create_table(
        "daily_totals",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(32), primary_key=True),
        sa.Column("payments_count", sa.Integer, nullable=False),
        sa.Column("payments_amount", MONEY, nullable=False),
        sa.Column("refunds_count", sa.Integer, nullable=False),
        sa.Column("refunds_amount", MONEY, nullable=False),
        sa.Column("net_amount", MONEY, nullable=False),
    )
    op.create_table(
        "journal_entries",
        sa.Column("position", ID, primary_key=True, autoincrement=False),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("memo", sa.String(64), nullable=False),
    )
    positions = op.create_table(
        "projection_positions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", ID, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(positions, [{"name": name, "position": 0, "updated_at": now} for name in PROJECTIONS])


def downgrade() -> None:
    for table in ("projection_positions", "journal_entries", "daily_totals", "callback_log", "order_status"):
        op.drop_table(table)
