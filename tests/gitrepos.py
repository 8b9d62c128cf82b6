"""Real git repositories with bare remotes, and real signing keys, for the tests.

* `ServiceRepo`: a service checkout on `main` with a bare remote `origin`; commits, tags, pushes,
  hooks, signing configuration. `git()` runs git with a clean environment (no system or global
  git configuration of the developer, fixed identities).
* `service_repo` (fixture): a fresh checkout with one commit, pushed.
* `deploy_repo` (fixture): deploy tags 99 and 100, three commits since, signing with the session
  GPG key; built once per session and copied per test.
* `gpg_key`, `empty_gpg_home` (session): a GnuPG home in a short temporary directory with one
  ed25519 signing key made by `gpg --batch --passphrase '' --quick-gen-key` (no pinentry), or none.
* `ssh_signing_key` (session): an ed25519 key (`ssh-keygen -N ''`) and an allowed-signers file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

AUTHOR = ("Test Author", "author@example.com")
DEPLOYER = ("Deployer", "deployer@example.com")

#: The deploy repository's committer (who makes the deploy tags), as extra environment.
DEPLOYER_ENV = {"GIT_COMMITTER_NAME": DEPLOYER[0], "GIT_COMMITTER_EMAIL": DEPLOYER[1]}


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment without the developer's git/GPG/tool settings, plus fixed
    identities and no system or global git configuration; then `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "GNUPGHOME", "BUGZILLA_", "INVOKE_"))
    }
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
        GIT_TERMINAL_PROMPT="0",
    )
    env.update(extra or {})
    return env


def git(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
) -> str:
    """Run git in `cwd` (environment: `git_env(env)`); its stdout, stripped. A failure raises
    AssertionError with git's stderr unless `check` is false."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(env),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


# -- signing keys --------------------------------------------------------------------------------


@dataclass
class GpgKey:
    home: Path
    fingerprint: str
    email: str = DEPLOYER[1]

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}


@dataclass
class SshKey:
    private: Path
    public: Path
    allowed_signers: Path


def _short_tempdir(prefix: str) -> Path:
    # gpg-agent's socket path must stay short (sun_path is 108 bytes), so not under tmp_path.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def make_gpg_home(with_key: bool) -> GpgKey:
    home = _short_tempdir("gpg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    fingerprint = ""
    if with_key:
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                f"{DEPLOYER[0]} <{DEPLOYER[1]}>",
                "ed25519",
                "sign",
                "never",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        fingerprint = next(
            line.split(":")[9] for line in out.splitlines() if line.startswith("fpr")
        )
    return GpgKey(home, fingerprint)


def stop_gpg_home(key: GpgKey) -> None:
    subprocess.run(
        ["gpgconf", "--kill", "all"],
        env={**os.environ, "GNUPGHOME": str(key.home)},
        capture_output=True,
    )
    shutil.rmtree(key.home, ignore_errors=True)


@pytest.fixture(scope="session")
def gpg_key() -> Iterator[GpgKey]:
    key = make_gpg_home(with_key=True)
    yield key
    stop_gpg_home(key)


@pytest.fixture(scope="session")
def empty_gpg_home() -> Iterator[GpgKey]:
    """A GnuPG home without any key (for the "no signing key" refusal)."""
    key = make_gpg_home(with_key=False)
    yield key
    stop_gpg_home(key)


@pytest.fixture(scope="session")
def ssh_signing_key(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    directory = tmp_path_factory.mktemp("ssh")
    private = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", DEPLOYER[1], "-f", str(private)],
        check=True,
        capture_output=True,
    )
    public = directory / "id_ed25519.pub"
    allowed = directory / "allowed_signers"
    allowed.write_text(f"{DEPLOYER[1]} {public.read_text().strip()}\n")
    return SshKey(private, public, allowed)


# -- repositories --------------------------------------------------------------------------------


class ServiceRepo:
    """A checkout at `root/service` on branch `main`, with a bare remote `origin` at
    `root/origin.git`. `env` is extra environment for every git command (GNUPGHOME, committer).

    `ServiceRepo(root)` creates both; `ServiceRepo(root, create=False)` opens a copy.
    """

    def __init__(
        self,
        root: Path,
        main: str = "main",
        *,
        create: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.path = root / "service"
        self.remote_path = root / "origin.git"
        self.main = main
        self.env: dict[str, str] = dict(env or {})
        self._counter = 0
        if not create:  # a copy: go on numbering the changes after its last one
            changes = self.path / "changes.txt"
            self._counter = int(changes.read_text().split()[-1]) if changes.exists() else 0
            return
        git(root, "init", "--quiet", "--bare", f"--initial-branch={main}", str(self.remote_path))
        git(root, "init", "--quiet", f"--initial-branch={main}", str(self.path))
        self.git("config", "user.name", AUTHOR[0])
        self.git("config", "user.email", AUTHOR[1])
        self.git("config", "commit.gpgsign", "false")
        self.git("config", "tag.gpgsign", "false")
        self.git("remote", "add", "origin", str(self.remote_path))

    def git(self, *args: str, env: dict[str, str] | None = None, **kwargs) -> str:
        return git(self.path, *args, env={**self.env, **(env or {})}, **kwargs)

    def remote_git(self, *args: str, check: bool = True) -> str:
        return git(self.remote_path, *args, env=self.env, check=check)

    def commit(self, message: str, body: str = "", author: tuple[str, str] | None = None) -> str:
        """A commit changing one file; returns its full sha."""
        self._counter += 1
        (self.path / "changes.txt").write_text(f"change {self._counter}\n", encoding="utf-8")
        self.git("add", "changes.txt")
        env = {}
        if author:
            env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]}
        full = message + (f"\n\n{body}" if body else "")
        self.git("commit", "--quiet", "-m", full, env=env)
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
            lines.append(f"committer {AUTHOR[0]} <{AUTHOR[1]}> {1700000000 + n} +0000".encode())
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
            env=git_env(self.env),
        )
        self.git("reset", "--quiet", "--hard", self.main)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev)

    def head_or_none(self) -> str | None:
        return self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False) or None

    def tag(self, name: str, rev: str = "HEAD", push: bool = False) -> None:
        """A lightweight tag; with `push`, pushed (only that ref) to origin."""
        self.git("tag", name, rev)
        if push:
            self.push(f"refs/tags/{name}")

    def push(self, *refs: str) -> None:
        """Push `refs` to origin; without any, main and every tag."""
        self.git("push", "--quiet", "origin", *(refs or ("--tags", self.main)))

    def _tags(self, where: Path) -> dict[str, str]:
        out = git(where, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
        return dict(line.split() for line in out.splitlines() if line)

    def remote_tags(self) -> dict[str, str]:
        """Tag name -> object sha on the bare remote."""
        return self._tags(self.remote_path)

    def local_tags(self) -> dict[str, str]:
        return self._tags(self.path)

    def use_gpg(self, key: GpgKey) -> None:
        self.env["GNUPGHOME"] = str(key.home)
        self.git("config", "gpg.format", "openpgp")
        if key.fingerprint:
            self.git("config", "user.signingkey", key.fingerprint)

    def use_ssh(self, key: SshKey) -> None:
        self.git("config", "gpg.format", "ssh")
        self.git("config", "user.signingkey", str(key.public))
        self.git("config", "gpg.ssh.allowedSignersFile", str(key.allowed_signers))

    def install_remote_hook(self, name: str, script: str) -> None:
        hook = self.remote_path / "hooks" / name
        hook.write_text("#!/bin/sh\n" + script)
        hook.chmod(0o755)

    def install_local_hook(self, name: str, script: str) -> None:
        hook = self.path / ".git" / "hooks" / name
        hook.write_text("#!/bin/sh\n" + script)
        hook.chmod(0o755)


@pytest.fixture
def service_repo(tmp_path: Path) -> ServiceRepo:
    """A fresh service checkout with one initial commit, pushed to its bare origin."""
    repo = ServiceRepo(tmp_path)
    repo.commit("Initial commit")
    repo.push()
    return repo


def make_deploy_repo(
    root: Path, *, tags: tuple[str, ...] = ("99", "100"), new_commits: int = 3
) -> ServiceRepo:
    """A remote with `main`, deploy tags on older commits, then `new_commits` since the last tag;
    the deployer commits."""
    repo = ServiceRepo(root, env=DEPLOYER_ENV)
    repo.commit("Initial commit")
    for tag in tags:
        repo.commit(f"bug 1000{tag}: work deployed in {tag}")
        repo.tag(tag)
    for i in range(new_commits):
        repo.commit(f"bug 20000{i}: new change {i}", author=("Ana Müller", "ana@example.com"))
    repo.push()
    return repo


@pytest.fixture(scope="session")
def _deploy_repo_template(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    """Built once, signing with the session GPG key: each test gets a copy (git commands are the
    slow part of the setup)."""
    root = tmp_path_factory.mktemp("deploy-template")
    make_deploy_repo(root).use_gpg(gpg_key)
    return root


@pytest.fixture
def deploy_repo(
    tmp_path: Path,
    gpg_key: GpgKey,
    monkeypatch: pytest.MonkeyPatch,
    _deploy_repo_template: Path,
) -> ServiceRepo:
    """Tags 99 and 100, three commits since, signing with the session GPG key.

    In-process code (lib/) sees the same git environment as the test helpers: no global or
    system git config of the developer, the deployer as committer.
    """
    env = {**DEPLOYER_ENV, "GNUPGHOME": str(gpg_key.home)}
    for name, value in git_env(env).items():
        if name.startswith("GIT_"):
            monkeypatch.setenv(name, value)
    for name in ("service", "origin.git"):
        shutil.copytree(_deploy_repo_template / name, tmp_path / name, symlinks=True)
    repo = ServiceRepo(tmp_path, create=False, env=env)
    repo.git("remote", "set-url", "origin", str(repo.remote_path))
    return repo
