"""The use cases: the application service (commands in, events out), delivery to the merchant, alerting, audit,
and the one reload-decide-save loop behind every append. Imports the domain, the read model's queries and the
adapters' types; never chooses an adapter (that is ledger.bootstrap's job)."""
