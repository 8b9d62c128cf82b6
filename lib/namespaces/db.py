"""The local dev PostgreSQL database: open psql on it, print its URL."""

from invoke import task  # noqa: F401
