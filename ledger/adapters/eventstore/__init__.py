"""The event store: an eventsourcing Application on SQLite (embedded) or PostgreSQL, with the ledger's
tuned recorders."""
