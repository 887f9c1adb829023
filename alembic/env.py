"""Alembic environment: migrations run on the connection `ledger.adapters.sql.migrations` hands over."""

import ledger.adapters.bills.sql
import ledger.adapters.refusals.quarantine  # noqa: F401  (its table is on ledger.adapters.refusals.rejections.metadata)
import ledger.adapters.refusals.rejections
import projections.tables
from alembic import context

# The metadatas describe the head, for `alembic check`-style comparisons; migrations themselves are explicit.
target_metadata = [ledger.adapters.refusals.rejections.metadata, ledger.adapters.bills.sql.metadata,
                   projections.tables.metadata]

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `ledger migrate`, which knows the database URL")

context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
