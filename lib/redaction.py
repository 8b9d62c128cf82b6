"""Keeping secrets out of logs and out of child processes' environments.

Invoke's `--debug` (and INVOKE_DEBUG) logs every config source it loads as a dict repr,
`db.password`, `bugzilla.api_key` and the like included. `install_log_redaction()` puts a
filter on Invoke's logger (and on the handlers already attached, for its child loggers) that
masks the value of every config key whose name says it is a secret, and the values of the
secret environment variables, in the formatted message. It is called when lib.namespaces is
imported, which Invoke does before it loads the environment and the config files.

`child_environment()` is the environment for a child process (psql, pgcli, pip-audit, npm):
ours without the secret variables.

Cheap to import: only the standard library modules Invoke has imported already.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping

#: What a secret value is replaced with.
MASK = "****"

#: Environment variables that hold secrets; never passed to a child process.
SECRET_ENVIRONMENT_VARIABLES = (
    "BUGZILLA_API_KEY",
    "SOCORRO_REPROCESS_API_TOKEN",
    "SOCORRO_API_TOKEN",
    "CRASHSTATS_API_TOKEN",
    "PGPASSWORD",
    "INVOKE_DB_PASSWORD",
)

#: Words that make a config key (or environment variable) name a secret's name.
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
)


@functools.cache
def _secret_entry() -> re.Pattern[str]:
    """A mapping entry in a repr, `'key': value`, whose key names a secret.

    The value is a (bytes) string literal in either quote style, or a bare number or word
    (a YAML number). Compiled on first use: importing this module stays cheap.
    """
    words = "|".join(re.escape(w).replace("_", "[_-]?") for w in _SECRET_WORDS)
    key = r"""(?P<key>(?P<q>['"])[^'"\n]*?(?:WORDS)[^'"\n]*?(?P=q)\s*:\s*)""".replace(
        "WORDS", words
    )
    value = r"""(?P<value>b?'(?:[^'\\\n]|\\.)*'|b?"(?:[^"\\\n]|\\.)*"|[\w.+-]+)"""
    return re.compile(
        key + value,
        re.IGNORECASE,
    )


#: Secret values shorter than this are not searched for literally (too many false hits).
_MIN_LITERAL = 4


def is_secret_name(name: str) -> bool:
    """True for a config key or environment variable name that names a secret."""
    folded = name.lower().replace("-", "_")
    return any(word in folded or word.replace("_", "") in folded for word in _SECRET_WORDS)


def _is_secret_variable(name: str) -> bool:
    return name in SECRET_ENVIRONMENT_VARIABLES or (
        name.startswith("INVOKE_") and is_secret_name(name)
    )


def secret_environment_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the secret environment variables (long enough to search for)."""
    environ = os.environ if environ is None else environ
    return sorted(
        {
            value
            for name, value in environ.items()
            if _is_secret_variable(name) and len(value) >= _MIN_LITERAL
        },
        key=len,
        reverse=True,
    )


def child_environment(
    base: Mapping[str, str] | None = None, also_remove: Iterable[str] = ()
) -> dict[str, str]:
    """A copy of `base` (default: our environment) without the secret variables.

    Removes the names in SECRET_ENVIRONMENT_VARIABLES, every INVOKE_* variable whose name
    names a secret (INVOKE_BUGZILLA_API_KEY, ...) or whose value is a URL with a password
    (INVOKE_BUGZILLA_URL=https://user:password@...), and the names in `also_remove`.
    """
    base = os.environ if base is None else base
    extra = set(also_remove)
    return {
        k: v
        for k, v in base.items()
        if not _is_secret_variable(k) and k not in extra and not _invoke_url_with_password(k, v)
    }


_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def _invoke_url_with_password(name: str, value: str) -> bool:
    """An INVOKE_* setting holding a `scheme://user:password@...` URL (bugzilla.url may)."""
    return name.startswith("INVOKE_") and bool(_URL_WITH_PASSWORD.match(value))


def _mask_entry(match: re.Match[str]) -> str:
    value = match.group("value").strip()
    if value in ("None", "''", '""', "False", "True"):
        return match.group(0)  # nothing secret to hide; saying "no password" helps debugging
    return f"{match.group('key')}'{MASK}'"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the values of secret-named keys and the given secret values masked."""
    masked = _secret_entry().sub(_mask_entry, text)
    for secret in secrets:
        if len(secret) < _MIN_LITERAL:
            continue
        # As written, and as it appears inside a repr() (backslashes and quotes escaped).
        for form in {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode()}:
            if form:
                masked = masked.replace(form, MASK)
    return masked


class SecretRedactingFilter(logging.Filter):
    """Rewrites a record's message with the secrets masked; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_secrets_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a broken record is the logging module's business)
            return True
        masked = redact(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, ()
        record._secrets_redacted = True
        return True


#: Invoke's logger (invoke.util.log); its records carry the name "invoke".
INVOKE_LOGGER = "invoke"


def install_log_redaction() -> SecretRedactingFilter:
    """Mask secrets in everything Invoke logs from now on (idempotent; returns the filter).

    The filter goes on the "invoke" logger (every record Invoke emits), on any "invoke.*"
    logger that exists, and on the handlers already attached to those loggers and to the root
    logger (where `--debug`'s logging.basicConfig puts its handler), so records of child
    loggers, which skip the parent logger's filters, are masked before they are written too.
    """
    secrets = secret_environment_values()
    logger = logging.getLogger(INVOKE_LOGGER)
    existing = next((f for f in logger.filters if isinstance(f, SecretRedactingFilter)), None)
    log_filter = existing or SecretRedactingFilter(secrets)
    if existing is not None:
        log_filter.secrets = sorted(set(existing.secrets) | set(secrets), key=len, reverse=True)
    loggers = [logger, logging.getLogger()]
    loggers += [
        item
        for name, item in list(logging.Logger.manager.loggerDict.items())
        if name.startswith(INVOKE_LOGGER + ".") and isinstance(item, logging.Logger)
    ]
    for item in loggers:
        if item is not logging.getLogger():
            item.addFilter(log_filter)  # a no-op when it is there already
        for handler in item.handlers:
            handler.addFilter(log_filter)
    return log_filter
