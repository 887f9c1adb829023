"""Where imported bills' bytes are kept, addressed by their SHA-256: the database (`sql`), a folder (`folder`,
LEDGER_BILL_DIR), or memory (`memory`, the twin)."""
