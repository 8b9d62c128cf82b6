"""Dependency security checks: known vulnerabilities in the service's Python and JS pins."""

from invoke import task  # noqa: F401
