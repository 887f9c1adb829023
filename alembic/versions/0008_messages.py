"""Alipay's message service in the read model: the `messages` table of every recorded message, and the bank leg
of an order's refunds (deposit-back) in order_status. Both start empty: no event before this revision is a
message, and the `messages` projection starts at position 0, so it reads the log once to catch up.

Revision ID: 0008
Revises: 0007
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("position", ID, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("auth_app_id", sa.String(64), nullable=False),
        sa.Column("notify_id", sa.String(128), nullable=False),
        sa.Column("msg_method", sa.String(128), nullable=False),
        sa.Column("out_trade_no", sa.String(64)),
        sa.Column("stream_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("duplicate", sa.Boolean, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.UniqueConstraint("stream_id", "version", name="uq_messages_event"),
    )
    op.create_index("ix_messages_method", "messages", ["msg_method", "position"])
    op.create_index("ix_messages_received", "messages", ["received_at"])
    with op.batch_alter_table("order_status") as batch:
        batch.add_column(sa.Column("deposit_back_status", sa.String(1)))
        batch.add_column(sa.Column("deposited_back_amount", sa.Numeric(14, 2)))
        batch.add_column(sa.Column("deposit_back_at", TZ))
    positions = sa.table("projection_positions", sa.column("name", sa.String), sa.column("position", sa.BigInteger),
                         sa.column("updated_at", TZ))
    op.bulk_insert(positions, [{"name": "messages", "position": 0, "updated_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.execute(sa.text("delete from projection_positions where name = 'messages'"))
    with op.batch_alter_table("order_status") as batch:
        batch.drop_column("deposit_back_at")
        batch.drop_column("deposited_back_amount")
        batch.drop_column("deposit_back_status")
    op.drop_index("ix_messages_received", "messages")
    op.drop_index("ix_messages_method", "messages")
    op.drop_table("messages")
