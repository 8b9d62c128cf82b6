"""Shared fixtures: running the real `invoke` binary in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_crashstats import crashstats, crashstats_env  # noqa: F401

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Fixture modules: git repositories and signing keys, the fake Dockerflow service.
pytest_plugins = ["tests.fake_dockerflow", "tests.deploy_fixtures"]

#: Environment variables that must never leak from the developer's shell into a test run.
_LEAKY_PREFIXES = (
    "INVOKE_",
    "BUGZILLA_",
    "SOCORRO_",
    "CRASHSTATS_",
    "PG",
    "GIT_",
    "GNUPGHOME",
    "COLUMNS",
    "LINES",
)


def clean_environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    env.update(
        HOME=str(home),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.com",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@example.com",
        PYTHONDONTWRITEBYTECODE="1",
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
    )
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME so no ~/.invoke.yaml, ~/.bugzillarc or ~/.gitconfig leaks in."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return clean_environ(home)


def run_invoke(
    *args: str,
    cwd: Path,
    env: dict[str, str],
    search_root: Path | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m invoke [--search-root ROOT] ARGS` in `cwd`, with no stdin unless `input`."""
    root = ["--search-root", str(search_root)] if search_root else []
    return subprocess.run(
        [sys.executable, "-m", "invoke", *root, *args],
        cwd=cwd,
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def invoke(env: dict[str, str]):
    """Run `python -m invoke ARGS` from `cwd` (default: the project root) with no stdin.

    Returns the CompletedProcess (text mode). Extra environment via `extra_env=`.
    """

    def run(
        *args: str,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return run_invoke(
            *args,
            cwd=cwd or PROJECT_ROOT,
            env={**env, **(extra_env or {})},
            search_root=PROJECT_ROOT,
            input=input,
            timeout=timeout,
        )

    return run


# The fake Bugzilla REST server (BMO and upstream 5.0 modes); see tests/fake_bugzilla.py.
from tests.fake_bugzilla import (  # noqa: E402, F401
    bugzilla_server,
    fake_bugzilla,
    fake_bugzilla_upstream,
)
from tests.gitrepos import service_repo  # noqa: E402,F401
