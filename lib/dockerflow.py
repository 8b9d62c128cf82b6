"""Dockerflow endpoints of a deployed service: what it serves (/__version__) and its health.

Mozilla services publish `GET <host>/__version__` (`{"commit", "version", "source", "build"}`,
baked into the image; `{}` when missing) and `GET <host>/__heartbeat__` (200 when the backing
services answer, 500 otherwise). `wait_for_commit` polls until a host serves a commit, retrying
network errors, and never loops past its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

USER_AGENT = "releng-tasks (deploy.watch)"


@dataclass
class Served:
    """One answer of /__version__: the commit and version, or the error that prevented it."""

    commit: str = ""
    version: str = ""
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return f"no answer ({self.error})"
        if not self.commit:
            return "no commit in /__version__"
        return f"{self.commit[:7]}" + (f" ({self.version})" if self.version else "")


@dataclass
class Heartbeat:
    ok: bool
    detail: str


def _session() -> Any:
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = True
    return session


def checked_base_url(url: str, key: str) -> str:
    """`url` if it is an http(s) URL with a host, else a UserError naming the setting `key`."""
    from urllib.parse import urlsplit

    from lib.errors import UserError

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise UserError(f"{key} must be an http:// or https:// URL with a host (got {url!r})")
    return url.strip()


def _url(base: str, path: str) -> str:
    return base.rstrip("/") + path


def _get(session: Any, url: str, timeout: float, echo: bool) -> Any:
    """GET `url`; with `echo` (dry runs) the request is printed on stderr first."""
    if echo:
        from lib.console import info

        info(f"dry-run: runs: GET {url}")
    return session.get(url, timeout=timeout)


def fetch_version(
    base_url: str, timeout: float = 10, session: Any = None, *, echo: bool = False
) -> Served:
    """What `base_url` serves now; network and HTTP errors come back in `Served.error`."""
    import requests

    session = session or _session()
    try:
        response = _get(session, _url(base_url, "/__version__"), timeout, echo)
    except requests.RequestException as exc:
        return Served(error=type(exc).__name__)
    if response.status_code != 200:
        return Served(error=f"HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        return Served(error="answer is not JSON")
    if not isinstance(data, dict):
        return Served(error="answer is not a JSON object")
    return Served(commit=str(data.get("commit") or ""), version=str(data.get("version") or ""))


def fetch_heartbeat(
    base_url: str, timeout: float = 10, session: Any = None, *, echo: bool = False
) -> Heartbeat:
    """The host's /__heartbeat__: ok, or what failed."""
    import requests

    session = session or _session()
    try:
        response = _get(session, _url(base_url, "/__heartbeat__"), timeout, echo)
    except requests.RequestException as exc:
        return Heartbeat(False, f"no answer ({type(exc).__name__})")
    if response.status_code == 200:
        return Heartbeat(True, "ok")
    detail = f"HTTP {response.status_code}"
    try:
        checks = response.json().get("checks")
        if checks:
            detail += ": " + ", ".join(f"{k}={v}" for k, v in sorted(checks.items()))
    except (ValueError, AttributeError):
        pass
    return Heartbeat(False, detail)


def serves(served: Served, commit: str, contains: Callable[[str, str], bool] | None = None) -> bool:
    """True when `served` is `commit`, or (with `contains`) a later commit that includes it."""
    if not served.commit:
        return False
    if served.commit == commit:
        return True
    return bool(contains and contains(commit, served.commit))


@dataclass
class WatchResult:
    live: bool
    last: Served
    polls: int
    elapsed: float


def wait_for_commit(
    base_url: str,
    commit: str,
    *,
    timeout: float,
    interval: float,
    contains: Callable[[str, str], bool] | None = None,
    progress: Callable[[float, Served], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    echo: bool = False,
) -> WatchResult:
    """Poll /__version__ every `interval` seconds until it serves `commit` or `timeout` passes.

    Network errors and bad answers count as "not yet" and are retried. Bounded: at most
    timeout/interval + 1 polls.
    """
    session = _session()
    start = clock()
    polls = 0
    request_timeout = max(1.0, min(10.0, interval * 2))
    while True:
        served = fetch_version(base_url, timeout=request_timeout, session=session, echo=echo)
        polls += 1
        elapsed = clock() - start
        if progress:
            progress(elapsed, served)
        if serves(served, commit, contains):
            return WatchResult(True, served, polls, elapsed)
        remaining = timeout - (clock() - start)
        if remaining <= 0:
            return WatchResult(False, served, polls, elapsed)
        sleep(min(interval, remaining))
