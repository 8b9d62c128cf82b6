"""Access to the Invoke configuration and to the paths the tasks anchor on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lib.errors import UserError

#: The directory holding tasks.py, invoke.yaml and templates/ (never the cwd).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setting(c: Any, dotted: str) -> Any:
    """Return the config value at `dotted` (e.g. "deploy.remote"); a missing key is a UserError."""
    node = c.config
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, AttributeError):
            raise UserError(
                f"config key {dotted} is missing; it is declared in invoke.yaml"
            ) from None
    return node


def is_dry(c: Any, dry_run: bool = False) -> bool:
    """True under the global `invoke --dry` or the task's own --dry-run flag."""
    return bool(dry_run or c.config.run.dry)


def resolve_path(value: str | os.PathLike[str] | None, default: Path | None = None) -> Path:
    """Expand ~ and make `value` absolute against the cwd (user-given paths are cwd-relative)."""
    if value in (None, ""):
        return (default or Path.cwd()).resolve()
    return Path(os.path.expanduser(str(value))).resolve()


def project_path(value: str | None, default: str) -> Path:
    """A path from config that, when relative, is anchored to the project root, not the cwd."""
    path = Path(os.path.expanduser(value or default))
    return path if path.is_absolute() else PROJECT_ROOT / path
