"""Alipay's formats: the notification form, RSA2 signatures and keys, and a sandbox that signs as Alipay does."""
