"""Logs of notifications the ledger did not book: refused ones (bad signature, unknown order) and quarantined ones."""
