"""Real git repositories for the tests: a service checkout with a bare `origin` remote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, input=input, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class ServiceRepo:
    """A checkout at `path` on branch `main`, with a bare remote `origin` at `remote_path`."""

    def __init__(self, root: Path, main: str = "main") -> None:
        self.path = root / "service"
        self.remote_path = root / "origin.git"
        self.main = main
        self._counter = 0
        git(root, "init", "--quiet", "--bare", f"--initial-branch={main}", str(self.remote_path))
        git(root, "init", "--quiet", f"--initial-branch={main}", str(self.path))
        git(self.path, "config", "user.name", "Test Author")
        git(self.path, "config", "user.email", "author@example.com")
        git(self.path, "config", "commit.gpgsign", "false")
        git(self.path, "config", "tag.gpgsign", "false")
        git(self.path, "remote", "add", "origin", str(self.remote_path))

    def git(self, *args: str, **kwargs) -> str:
        return git(self.path, *args, **kwargs)

    def commit(self, message: str, author: tuple[str, str] | None = None) -> str:
        """A commit changing one file; returns its full sha."""
        self._counter += 1
        (self.path / "changes.txt").write_text(f"change {self._counter}\n", encoding="utf-8")
        self.git("add", "changes.txt")
        env = {}
        if author:
            env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]}
        self.git("commit", "--quiet", "-m", message, env=env)
        return self.head()

    def merge_branch(self, name: str, messages: list[str]) -> str:
        """Commits on a side branch, merged into main with a merge commit; returns the merge sha."""
        self.git("checkout", "--quiet", "-b", name)
        for message in messages:
            self.commit(message)
        self.git("checkout", "--quiet", self.main)
        self.git("merge", "--quiet", "--no-ff", "-m", f"Merge branch {name}", name)
        return self.head()

    def many_commits(self, count: int, message: str = "Change number {n}") -> str:
        """`count` commits on main, written with git fast-import (fast for thousands)."""
        parent = self.head_or_none()
        lines = []
        for n in range(1, count + 1):
            body = (message.format(n=n) + "\n").encode("utf-8")
            content = f"{n}\n".encode()
            lines.append(b"commit refs/heads/" + self.main.encode())
            lines.append(
                f"committer Test Author <author@example.com> {1700000000 + n} +0000".encode()
            )
            lines.append(f"data {len(body)}".encode())
            lines.append(body)
            if n == 1 and parent:
                lines.append(f"from {parent}".encode())
            lines.append(f"M 644 inline bulk.txt\ndata {len(content)}".encode())
            lines.append(content)
        data = b"\n".join(lines) + b"\n"
        subprocess.run(
            ["git", "fast-import", "--quiet", "--force"],
            cwd=self.path,
            input=data,
            check=True,
            env={**os.environ, **GIT_ENV},
        )
        self.git("reset", "--quiet", "--hard", self.main)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def head_or_none(self) -> str | None:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=self.path,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip() or None

    def tag(self, name: str, rev: str = "HEAD") -> None:
        self.git("tag", name, rev)

    def push(self) -> None:
        self.git("push", "--quiet", "--tags", "origin", self.main)

    def remote_tags(self) -> dict[str, str]:
        """Tag name -> object sha on the bare remote."""
        out = git(
            self.remote_path, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags"
        )
        return dict(line.split() for line in out.splitlines() if line)


@pytest.fixture
def service_repo(tmp_path: Path) -> ServiceRepo:
    """A fresh service checkout with one initial commit, pushed to its bare origin."""
    repo = ServiceRepo(tmp_path)
    repo.commit("Initial commit")
    repo.push()
    return repo
