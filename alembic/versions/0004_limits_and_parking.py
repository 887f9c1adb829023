"""Columns sized from Alipay's limits, the anomaly flag, the quarantine of unbookable notifications, and the
streams the read side holds back.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# (table, column, old type, new type): widened only, so no value is ever cut.
WIDENED = [
    ("order_status", "buyer_id", sa.String(32), sa.String(64), True),
    ("order_status", "seller_id", sa.String(32), sa.String(64), True),
    ("callback_log", "notify_id", sa.String(64), sa.String(128), False),
    ("journal_entries", "memo", sa.String(64), sa.String(80), False),
    ("daily_totals", "payments_amount", sa.Numeric(14, 2), sa.Numeric(20, 2), False),
    ("daily_totals", "refunds_amount", sa.Numeric(14, 2), sa.Numeric(20, 2), False),
    ("daily_totals", "net_amount", sa.Numeric(14, 2), sa.Numeric(20, 2), False),
]


def upgrade() -> None:
    for table, column, old, new, nullable in WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=new, existing_type=old, existing_nullable=nullable)
    with op.batch_alter_table("order_status") as batch:
        batch.add_column(sa.Column("anomaly", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("order_status") as batch:
        batch.alter_column("anomaly", server_default=None, existing_type=sa.Boolean, existing_nullable=False)
    op.create_table(
        "quarantined_callbacks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("notification_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("first_received_at", TZ, nullable=False),
        sa.Column("last_received_at", TZ, nullable=False),
        sa.Column("copies", sa.Integer, nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "parked_streams",
        sa.Column("stream_id", sa.String(36), primary_key=True),
        sa.Column("position", ID, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("positions", sa.Text, nullable=False),
        sa.Column("parked_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("parked_streams")
    op.drop_table("quarantined_callbacks")
    with op.batch_alter_table("order_status") as batch:
        batch.drop_column("anomaly")
    for table, column, old, new, nullable in reversed(WIDENED):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=old, existing_type=new, existing_nullable=nullable)
