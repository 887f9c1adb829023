"""The Alipay callback ledger: verified notifications become immutable events in per-order streams."""
