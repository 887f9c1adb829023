"""Helpers for the test suite that need only the standard library, psycopg, redis and pytest."""
