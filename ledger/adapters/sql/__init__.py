"""SQLAlchemy engines for the ledger's own tables and the migrations that bring a database to the code's schema."""
