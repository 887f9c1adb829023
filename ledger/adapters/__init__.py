"""Adapters grouped by port, each in-memory twin beside its real adapter: the event store, the per-order lock,
SQL engine and migrations, the logs of refused notifications, outbound HTTP (the merchant's webhook, chat robots),
metrics. Nothing here imports the service, the read model or an entrypoint."""
