"""The Crash Stats HTTP API: one session with bounded retries, and where the API token comes from.

Retries: connection errors, timeouts, 429 (honouring `Retry-After`) and 5xx are retried with
exponential backoff and full jitter, for GET and POST alike (a Reprocessing POST that is sent
twice only enqueues its ids again). Every request is bounded twice: at most `max_attempts`
tries and at most `max_wait` seconds spent sleeping between them. The token travels only in the
`Auth-Token` header; it is never put in a URL, a message or an exception.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.errors import UserError

DEFAULT_HOST = "https://crash-stats.mozilla.org"
TOKEN_VARIABLE = "SOCORRO_REPROCESS_API_TOKEN"
#: Files searched for the token, in the current directory, after the environment.
TOKEN_FILES = ("my.env", ".env")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def find_token(extra_env_file: str | None = None, cwd: Path | None = None) -> str | None:
    """The Crash Stats token: the environment, else my.env then .env in `cwd`, else the file
    configured in `crashes.env_file`. None when none of them sets it."""
    value = os.environ.get(TOKEN_VARIABLE, "").strip()
    if value:
        return value
    from dotenv import dotenv_values

    base = cwd or Path.cwd()
    candidates = [base / name for name in TOKEN_FILES]
    if extra_env_file:
        candidates.append(Path(os.path.expanduser(extra_env_file)))
    for path in candidates:
        if path.is_file():
            value = (dotenv_values(path).get(TOKEN_VARIABLE) or "").strip()
            if value:
                return value
    return None


def require_token(extra_env_file: str | None = None, cwd: Path | None = None) -> str:
    """Like find_token, but a missing token is a UserError that says exactly where to set it."""
    token = find_token(extra_env_file, cwd)
    if token:
        return token
    base = cwd or Path.cwd()
    where = f"the environment, or in {base / 'my.env'} or {base / '.env'}"
    if extra_env_file:
        where += f", or in {Path(os.path.expanduser(extra_env_file))}"
    else:
        where += ", or in a file named by crashes.env_file in invoke.yaml"
    raise UserError(
        f"no Crash Stats API token: set {TOKEN_VARIABLE}=<token> in {where} "
        f"(create one at <host>/api/tokens/ with the Reprocess Crashes permission)",
        code=2,
    )


def check_host(host: str | None) -> str:
    """A Crash Stats base URL without its trailing slash; anything else is a UserError."""
    value = (host or "").strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise UserError(f"--host must be an http(s) URL such as {DEFAULT_HOST} (got {host!r})")
    return value


class ApiError(Exception):
    """The server answered with an error that retrying will not fix (400, 403, 404...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class RetriesExhausted(Exception):
    """A request kept failing with retryable errors until a bound (attempts or wait) was hit."""


@dataclass
class RetryPolicy:
    """Bounds and shape of retries. Tests and benchmarks shrink the times."""

    max_attempts: int = 8
    max_wait: float = 300.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a random wait up to base * 2^(attempt-1), capped at backoff_max."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _error_message(response: Any) -> str:
    """The server's message from a JSON `{"error": ...}` envelope, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "errors", "detail", "message"):
            if data.get(key):
                return str(data[key])
    text = " ".join((response.text or "").split())
    return text[:300] or response.reason or "no message"


@dataclass
class CrashStatsClient:
    """Talks to one Crash Stats host. `stats` counts retries for the end-of-run summary."""

    host: str
    token: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[str], None] | None = None
    retries: int = 0
    requests_sent: int = 0
    rng: random.Random = field(default_factory=random.Random)
    _session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = "releng-tasks/1.0 (crashes)"
            if self.token:
                session.headers["Auth-Token"] = self.token
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        data: Mapping[str, Any] | list[tuple[str, str]] | None = None,
    ) -> Any:
        """Send one request with bounded retries; return the JSON of a 2xx answer.

        Raises ApiError for answers that retrying will not fix and RetriesExhausted when the
        attempts or the total wait run out.
        """
        import requests

        url = f"{self.host}{path}"
        waited = 0.0
        last_problem = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            retry_after: float | None = None
            try:
                self.requests_sent += 1
                response = self.session.request(
                    method, url, params=params, data=data, timeout=self.policy.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                # The message of these exceptions holds the URL (no secret in it) and the cause.
                kind = "timeout" if isinstance(error, requests.Timeout) else "connection error"
                last_problem = f"{kind} ({type(error).__name__})"
            except requests.RequestException as error:
                last_problem = f"request failed ({type(error).__name__})"
            else:
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        last_problem = f"HTTP {response.status_code} with a body that is not JSON"
                elif response.status_code in RETRY_STATUSES:
                    last_problem = f"HTTP {response.status_code}"
                    if response.status_code == 429:
                        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                else:
                    raise ApiError(response.status_code, _error_message(response))
            if attempt == self.policy.max_attempts:
                break
            if retry_after is not None:
                # Honour the server, plus a little jitter (at most 1%, 0.25 s) so parallel
                # clients do not return in lockstep, without wasting the allowed rate.
                delay = retry_after + self.rng.uniform(0, min(0.01 * retry_after, 0.25))
            else:
                delay = self.policy.backoff(attempt, self.rng)
            if waited + delay > self.policy.max_wait:
                raise RetriesExhausted(
                    f"{method} {path}: {last_problem}; giving up after {attempt} attempts "
                    f"because waiting {delay:.1f}s more would pass the {self.policy.max_wait:g}s "
                    f"retry budget"
                )
            self.retries += 1
            if self.on_retry:
                self.on_retry(f"{last_problem}; retry {attempt} in {delay:.1f}s")
            self.sleep(delay)
            waited += delay
        raise RetriesExhausted(
            f"{method} {path}: {last_problem}; giving up after {self.policy.max_attempts} attempts"
        )

    def get(self, path: str, params: Mapping[str, Any] | list[tuple[str, str]]) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, data: Mapping[str, Any] | list[tuple[str, str]]) -> Any:
        return self.request("POST", path, data=data)
