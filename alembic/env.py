"""Alembic environment: migrations run on the connection `ledger.migrations` hands over."""

from alembic import context
from ledger.rejections import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `ledger migrate`, which knows the database URL")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
