"""The HTTP API (Starlette): Alipay's notify endpoint, orders, reports, operations, health."""
