"""Deploys: the deploy bug, the signed tag, and watching production until it serves the tag."""

from invoke import task  # noqa: F401
