"""Trade queries in the order row: how the payment became known (paid_via), when the ledger next asks Alipay
(registered_at, query_step, next_query_at), what the last query answered, and whether the schedule ran out.

Rows of orders registered before have no registered_at, so no schedule, until a rebuild
(`ledger projections rebuild`) reads it from their events.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("order_status") as batch:
        batch.add_column(sa.Column("paid_via", sa.String(16)))
        batch.add_column(sa.Column("registered_at", _UTC))
        batch.add_column(sa.Column("query_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("query_step", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_query_at", _UTC))
        batch.add_column(sa.Column("query_taken_at", _UTC))
        batch.add_column(sa.Column("last_query_at", _UTC))
        batch.add_column(sa.Column("last_query_result", sa.String(64)))
        batch.add_column(sa.Column("queries_exhausted", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.create_index("ix_order_status_next_query", ["next_query_at"])
    op.execute("UPDATE order_status SET paid_via = 'notification' WHERE paid_amount IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("order_status") as batch:
        batch.drop_index("ix_order_status_next_query")
        for column in ("queries_exhausted", "last_query_result", "last_query_at", "query_taken_at", "next_query_at",
                       "query_step",
                       "query_count", "registered_at", "paid_via"):
            batch.drop_column(column)
