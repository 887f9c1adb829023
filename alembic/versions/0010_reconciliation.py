"""Reconciliation with Alipay's bill: the ledger's refunds one by one (`refunds`, from RefundRecorded, filled from
the log's start), the days matched (`reconciliation_days`) and the findings (`reconciliation_findings`).

Revision ID: 0010
Revises: 0009
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)
_TOTAL = sa.Numeric(20, 2)
_MONEY = sa.Numeric(14, 2)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NAMES = ("refunds", "reconciliation_days", "reconciliation_findings")


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("position", _ID, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("auth_app_id", sa.String(64), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("out_biz_no", sa.String(64), nullable=False),
        sa.Column("amount", _MONEY, nullable=False),
        sa.Column("refunded_at", _UTC),
        sa.Column("day", sa.Date, nullable=False),
    )
    op.create_index("ix_refunds_order", "refunds", ["app_id", "out_trade_no"])
    op.create_index("ix_refunds_day", "refunds", ["app_id", "day"])
    op.create_table(
        "reconciliation_days",
        sa.Column("app_id", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("day_id", sa.String(36), nullable=False, unique=True),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("last_run_at", _UTC),
        sa.Column("last_run_by", sa.String(200)),
        sa.Column("bill_id", sa.String(36)),
        sa.Column("bill_payments", sa.Integer),
        sa.Column("bill_refunds", sa.Integer),
        sa.Column("bill_total_amount", _TOTAL),
        sa.Column("bill_refund_amount", _TOTAL),
        sa.Column("bill_fee", _TOTAL),
        sa.Column("bill_share", _TOTAL),
        sa.Column("bill_net", _TOTAL),
        sa.Column("ledger_payments", sa.Integer),
        sa.Column("ledger_payment_amount", _TOTAL),
        sa.Column("ledger_refunds", sa.Integer),
        sa.Column("ledger_refund_amount", _TOTAL),
        sa.Column("matched", sa.Integer),
        sa.Column("fees_posted", _TOTAL, nullable=False),
        sa.Column("next_bill", sa.Boolean),
        sa.Column("fetch_attempts", sa.Integer, nullable=False),
        sa.Column("fetch_state", sa.String(16)),
        sa.Column("fetch_error", sa.Text),
        sa.Column("next_fetch_at", _UTC),
        sa.Column("updated_at", _UTC, nullable=False),
    )
    op.create_table(
        "reconciliation_findings",
        sa.Column("finding_id", sa.String(36), primary_key=True),
        sa.Column("position", _ID, nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(144), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("request_no", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("bill_trade_no", sa.String(64)),
        sa.Column("bill_amount", _MONEY),
        sa.Column("bill_fee", _MONEY),
        sa.Column("bill_line", sa.Integer),
        sa.Column("ledger_trade_no", sa.String(64)),
        sa.Column("ledger_status", sa.String(16)),
        sa.Column("ledger_amount", _MONEY),
        sa.Column("registered_amount", _MONEY),
        sa.Column("opened_at", _UTC, nullable=False),
        sa.Column("settled_at", _UTC),
        sa.Column("settled_by", sa.String(200)),
        sa.Column("note", sa.Text),
        sa.Column("last_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_reconciliation_findings_day", "reconciliation_findings", ["app_id", "day", "kind"])
    op.create_index("ix_reconciliation_findings_state", "reconciliation_findings", ["state", "opened_at"])
    # New projections, from the log's start: the refunds recorded before this are projected as they catch up.
    positions = sa.table("projection_positions", sa.column("name", sa.String), sa.column("position", sa.BigInteger),
                         sa.column("updated_at", _UTC))
    op.bulk_insert(positions, [{"name": name, "position": 0, "updated_at": datetime.now(UTC)} for name in
                               ("refunds", "reconciliation")])


def downgrade() -> None:
    op.execute("DELETE FROM projection_positions WHERE name IN ('refunds', 'reconciliation')")
    op.drop_index("ix_reconciliation_findings_state", "reconciliation_findings")
    op.drop_index("ix_reconciliation_findings_day", "reconciliation_findings")
    op.drop_table("reconciliation_findings")
    op.drop_table("reconciliation_days")
    op.drop_index("ix_refunds_day", "refunds")
    op.drop_index("ix_refunds_order", "refunds")
    op.drop_table("refunds")
