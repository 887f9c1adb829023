"""The failure stream on Dramatiq: dispatch from the log, delivery to the merchant, retries, alerts."""
