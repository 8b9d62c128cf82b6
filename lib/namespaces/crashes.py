"""Crash reprocessing: fetch crash ids from Super Search and submit them to the Reprocessing API."""

from invoke import task  # noqa: F401
