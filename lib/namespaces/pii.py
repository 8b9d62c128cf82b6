"""Protected-data (PII) access requests, handled on their Bugzilla bug."""

from invoke import task  # noqa: F401
