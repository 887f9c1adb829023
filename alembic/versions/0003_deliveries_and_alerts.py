"""Deliveries to the merchant's system and operators' alerts, as read-model tables.

Revision ID: 0003
Revises: 0002
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
POSITIONS = ("deliveries", "alerts", "dispatcher")


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("order_id", sa.String(36), primary_key=True),
        sa.Column("change", sa.String(96), primary_key=True),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_retry_at", TZ),
        sa.Column("started_at", TZ),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_deliveries_state", "deliveries", ["state", "next_retry_at"])
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("raised_at", TZ, nullable=False),
        sa.Column("sent_to", sa.String(64), nullable=False),
    )
    op.create_index("ix_alerts_raised", "alerts", ["raised_at"])
    positions = sa.table("projection_positions", sa.column("name", sa.String), sa.column("position", sa.BigInteger),
                         sa.column("updated_at", TZ))
    now = datetime.now(UTC)
    op.bulk_insert(positions, [{"name": name, "position": 0, "updated_at": now} for name in POSITIONS])


def downgrade() -> None:
    op.execute(sa.text("delete from projection_positions where name in ('deliveries', 'alerts', 'dispatcher')"))
    op.drop_table("alerts")
    op.drop_table("deliveries")
