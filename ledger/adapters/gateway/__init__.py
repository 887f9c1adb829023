"""Alipay's open-platform gateway: `http.HttpGateway` posts each signed request to it over HTTPS, and
`memory.MemoryGateway`, the in-memory twin for unit tests, hands it to
the stand-in gateway (ledger.alipay.sandbox_gateway). Both sign and verify through `exchange`, so the twin's
answers are believed exactly as real ones are.

The port is `ledger.service.ports.Gateway`; its answer, `GatewayAnswer`, lives in ledger.alipay.response.
"""
