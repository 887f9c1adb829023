"""The order aggregate, its events and the rules of the trade status machine, and the messages of Alipay's
message service (standard library and eventsourcing.domain only)."""
