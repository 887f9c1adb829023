"""An alert's status (waiting, sent, no_robots) in the read model, so alerts no robot can take are not counted
as waiting for ever; a delivery's state may be no_downstream (a value, no schema change). Rows recorded before
are sent if a robot has them, else waiting (a rebuild marks them as the configuration then says).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="waiting"))
    op.execute("UPDATE alerts SET status = 'sent' WHERE sent_to <> ''")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("status")
