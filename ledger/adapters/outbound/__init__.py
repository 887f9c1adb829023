"""Outbound HTTP: one client, the merchant's webhook, and the chat robots (DingTalk, WeCom) with their twin."""
