"""A service provider's (ISV) merchants apart: `auth_app_id` in the read model, part of an order's key and of
the daily totals' key. Rows recorded before hold "" (an app's own order).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("order_status", "callback_log", "journal_entries", "deliveries")

def _totals() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("payments_count", sa.Integer, nullable=False),
            sa.Column("payments_amount", sa.Numeric(20, 2), nullable=False),
            sa.Column("refunds_count", sa.Integer, nullable=False),
            sa.Column("refunds_amount", sa.Numeric(20, 2), nullable=False),
            sa.Column("net_amount", sa.Numeric(20, 2), nullable=False)]


AMOUNTS = "payments_count, payments_amount, refunds_count, refunds_amount, net_amount"


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("auth_app_id", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("order_status") as batch:
        batch.drop_constraint("uq_order_status_order", type_="unique")
        batch.create_unique_constraint("uq_order_status_order", ["app_id", "auth_app_id", "out_trade_no"])
    _totals_keyed_by(["day", "app_id", "auth_app_id"],
                     f"SELECT day, app_id, '', {AMOUNTS} FROM daily_totals")


def downgrade() -> None:
    _totals_keyed_by(["day", "app_id"], f"SELECT day, app_id, {', '.join(f'SUM({a})' for a in AMOUNTS.split(', '))}"
                                        " FROM daily_totals GROUP BY day, app_id")
    with op.batch_alter_table("order_status") as batch:
        batch.drop_constraint("uq_order_status_order", type_="unique")
        batch.create_unique_constraint("uq_order_status_order", ["app_id", "out_trade_no"])
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("auth_app_id")


def _totals_keyed_by(key: list[str], rows: str) -> None:
    """daily_totals made anew with another primary key (SQLite cannot change one in place), its rows copied."""
    columns = [sa.Column("day", sa.Date, primary_key=True), sa.Column("app_id", sa.String(32), primary_key=True)]
    if "auth_app_id" in key:
        columns.append(sa.Column("auth_app_id", sa.String(64), primary_key=True))
    op.create_table("daily_totals_new", *columns, *_totals())
    names = ", ".join([*key, AMOUNTS])
    op.execute(f"INSERT INTO daily_totals_new ({names}) {rows}")  # noqa: S608 (constants only)
    op.drop_table("daily_totals")
    op.rename_table("daily_totals_new", "daily_totals")
