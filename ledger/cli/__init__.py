"""The `ledger` command: an entrypoint, like api/; each command builds the ledger through ledger.bootstrap."""
