"""Trade bills as evidence: the bytes of every imported bill (`bill_files`, addressed by SHA-256) and the read
model's list of imports (`bills`, a projection of BillImported).

Revision ID: 0009
Revises: 0008
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)
_TOTAL = sa.Numeric(20, 2)


def upgrade() -> None:
    op.create_table(
        "bill_files",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", _UTC, nullable=False),
    )
    op.create_table(
        "bills",
        sa.Column("bill_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("bill_date", sa.Date, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("imported_at", _UTC, nullable=False),
        sa.Column("payments", sa.Integer, nullable=False),
        sa.Column("refunds", sa.Integer, nullable=False),
        sa.Column("total_amount", _TOTAL, nullable=False),
        sa.Column("receipt_amount", _TOTAL, nullable=False),
        sa.Column("fee", _TOTAL, nullable=False),
        sa.Column("share", _TOTAL, nullable=False),
        sa.Column("net", _TOTAL, nullable=False),
    )
    op.create_index("ix_bills_app_date", "bills", ["app_id", "bill_date"])
    # A new projection, from the log's start: no bill was imported before this.
    positions = sa.table("projection_positions", sa.column("name", sa.String), sa.column("position", sa.BigInteger),
                         sa.column("updated_at", _UTC))
    op.bulk_insert(positions, [{"name": "bills", "position": 0, "updated_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.execute("DELETE FROM projection_positions WHERE name = 'bills'")
    op.drop_index("ix_bills_app_date", "bills")
    op.drop_table("bills")
    op.drop_table("bill_files")
