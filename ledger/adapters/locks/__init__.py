"""Per-order locks: one delivery of an order is decided at a time, across processes (`redis.RedisOrderLock`)
or threads of one process (`local.LocalOrderLock`, the in-memory twin of the embedded mode).

The lock only narrows races: the event store's version check stays the fence that keeps the log right.
The port is `ledger.service.ports.OrderLock`; the values it hands out are in `holds`.
"""
