"""Access to the Invoke configuration and to the paths the tasks anchor on."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from lib.errors import UserError

#: The directory holding tasks.py, invoke.yaml and templates/ (never the cwd).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setting(c: Any, dotted: str, *, many: bool = False) -> Any:
    """Return the config value at `dotted` (e.g. "deploy.remote"); a missing key is a UserError.

    Every setting is one value (text, a number or a flag); `many` settings may also be a list
    (see `str_list`). A mapping or an unexpected list, e.g. from a `-f` file, is a UserError.
    """
    node = c.config
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, AttributeError):
            raise UserError(
                f"config key {dotted} is missing; it is declared in invoke.yaml"
            ) from None
    mapping = hasattr(node, "keys")  # a dict, or Invoke's DataProxy of a config section
    if mapping or (isinstance(node, list | tuple | set) and not many):
        kind = "a mapping" if mapping else "a list"
        raise UserError(
            f"config value {dotted} must be a single value, not {kind} (check the config files "
            f"and INVOKE_{dotted.upper().replace('.', '_')})"
        )
    if isinstance(node, str) and not _is_utf8(node):
        raise UserError(
            f"config value {dotted} holds bytes that are not UTF-8 text (check "
            f"INVOKE_{dotted.upper().replace('.', '_')} and the config files)"
        )
    return node


def text_setting(c: Any, dotted: str, *, required: bool = True) -> str:
    """A text setting (a name, a URL, a path) as a str; a UserError if it cannot be one.

    A YAML `true`/`false` (e.g. an unquoted `yes`) is refused rather than used as "True"; an
    empty value (or `null`) is refused when the setting is `required`.
    """
    value = setting(c, dotted)
    source = f"the config files and INVOKE_{dotted.upper().replace('.', '_')}"
    if isinstance(value, bool):
        raise UserError(
            f"config value {dotted} must be text, not {str(value).lower()} (check {source}; "
            "quote the value in YAML)"
        )
    result = "" if value is None else str(value)
    if required and not result.strip():
        raise UserError(
            f"config value {dotted} is empty; it needs a value (check {source}; the default is "
            "in invoke.yaml)"
        )
    return result


def _is_utf8(text: str) -> bool:
    """False for text decoded from invalid bytes (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def number(
    c: Any,
    dotted: str,
    *,
    kind: type = float,
    minimum: float | None = None,
    value: Any = None,
    flag: str | None = None,
) -> Any:
    """A numeric setting (or the flag `value` that overrides it), checked; a UserError if not.

    The error names `flag` when the value came from the flag, else the config key.

    Numbers are declared as strings in invoke.yaml so that a bad INVOKE_* override reaches this
    check (Invoke itself would die with a traceback casting it to an int).
    """
    raw = value if value is not None else setting(c, dotted)
    name = flag if (flag and value is not None) else dotted
    what = "a whole number" if kind is int else "a number"
    try:
        parsed = kind(str(raw).strip())
    except ValueError:
        raise UserError(f"{name} must be {what} (got {raw!r})") from None
    if not math.isfinite(parsed):  # nan, inf: no timeout, interval or size can be that
        raise UserError(f"{name} must be a finite {what.removeprefix('a ')} (got {raw!r})")
    if minimum is not None and parsed < minimum:
        raise UserError(f"{name} must be at least {minimum} (got {raw!r})")
    return parsed


def str_list(value: Any) -> list[str]:
    """A list setting: a YAML list, or a comma-separated string (what INVOKE_* can carry)."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]
