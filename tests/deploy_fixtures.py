"""Real git repositories with bare remotes, and real signing keys, for the deploy tests.

* `gpg_key` (session): a GnuPG home in a short temporary directory with one ed25519 signing key
  made by `gpg --batch --passphrase '' --quick-gen-key` (no pinentry involved).
* `ssh_signing_key` (session): an ed25519 key (`ssh-keygen -N ''`) and an allowed-signers file.
* `deploy_repo` (factory): a bare remote plus a clone on `main` with a history and deploy tags,
  configured to sign with the GPG key (or SSH, or nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fake_bugzilla import (  # noqa: F401 (fixtures)
    RELENG,
    FakeBugzilla,
    fake_bugzilla,
    fake_bugzilla_upstream,
)
from tests.fake_dockerflow import FakeDockerflow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SUMMARY = "socorro deploy: {}"

AUTHOR = ("Test Author", "author@example.com")
DEPLOYER = ("Deployer", "deployer@example.com")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env or git_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
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
        GIT_COMMITTER_NAME=DEPLOYER[0],
        GIT_COMMITTER_EMAIL=DEPLOYER[1],
        GIT_TERMINAL_PROMPT="0",
    )
    env.update(extra or {})
    return env


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


@dataclass
class DeployRepo:
    """A clone (`path`, on main) of a bare remote (`remote`), both on disk."""

    path: Path
    remote: Path
    env: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.path, *args, env=git_env(self.env), check=check)

    def remote_git(self, *args: str, check: bool = True) -> str:
        return git(self.remote, *args, env=git_env(self.env), check=check)

    def commit(self, summary: str, body: str = "", author: tuple[str, str] = AUTHOR) -> str:
        self.counter += 1
        (self.path / f"file{self.counter}.txt").write_text(f"change {self.counter}\n")
        self.git("add", "-A")
        message = summary + (f"\n\n{body}" if body else "")
        self.git(
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            message,
            "--author",
            f"{author[0]} <{author[1]}>",
        )
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev).strip()

    def push(self, *refs: str) -> None:
        self.git("push", "-q", "origin", *(refs or ("main",)))

    def tag_lightweight(self, name: str, rev: str = "HEAD", push: bool = True) -> None:
        self.git("tag", name, rev)
        if push:
            self.push(f"refs/tags/{name}")

    def remote_tags(self) -> dict[str, str]:
        out = self.remote_git(
            "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags"
        )
        return dict(line.split() for line in out.splitlines())

    def local_tags(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
        return dict(line.split() for line in out.splitlines())

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
        hook = self.remote / "hooks" / name
        hook.write_text("#!/bin/sh\n" + script)
        hook.chmod(0o755)

    def install_local_hook(self, name: str, script: str) -> None:
        hook = self.path / ".git" / "hooks" / name
        hook.write_text("#!/bin/sh\n" + script)
        hook.chmod(0o755)


def make_deploy_repo(
    base: Path, *, tags: tuple[str, ...] = ("99", "100"), new_commits: int = 3
) -> DeployRepo:
    """A remote with `main`, deploy tags on older commits, then `new_commits` since the last tag."""
    remote = base / "remote.git"
    git(base, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    path = base / "work"
    git(base, "clone", "-q", str(remote), str(path))
    repo = DeployRepo(path, remote)
    repo.git("checkout", "-q", "-b", "main")
    repo.git("config", "user.name", DEPLOYER[0])
    repo.git("config", "user.email", DEPLOYER[1])
    repo.commit("Initial commit")
    for tag in tags:
        repo.commit(f"bug 1000{tag}: work deployed in {tag}")
        repo.tag_lightweight(tag, push=False)
    for i in range(new_commits):
        repo.commit(f"bug 20000{i}: new change {i}", author=("Ana Müller", "ana@example.com"))
    repo.push("main")
    for tag in tags:
        repo.push(f"refs/tags/{tag}")
    return repo


@pytest.fixture(scope="session")
def _deploy_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: each test gets a copy (git commands are the slow part of the setup)."""
    base = tmp_path_factory.mktemp("deploy-template")
    make_deploy_repo(base)
    return base


@pytest.fixture
def deploy_repo(
    tmp_path: Path,
    gpg_key: GpgKey,
    monkeypatch: pytest.MonkeyPatch,
    _deploy_repo_template: Path,
) -> DeployRepo:
    """Tags 99 and 100, three commits since, signing with the session GPG key.

    In-process code (lib/) sees the same git environment as the test helpers: no global or
    system git config of the developer, the deployer as committer.
    """
    for name, value in git_env().items():
        if name.startswith("GIT_"):
            monkeypatch.setenv(name, value)
    shutil.copytree(_deploy_repo_template / "remote.git", tmp_path / "remote.git", symlinks=True)
    shutil.copytree(_deploy_repo_template / "work", tmp_path / "work", symlinks=True)
    repo = DeployRepo(tmp_path / "work", tmp_path / "remote.git", counter=100)
    repo.git("remote", "set-url", "origin", str(repo.remote))
    repo.use_gpg(gpg_key)
    return repo


@dataclass
class Deploy:
    repo: DeployRepo
    bz: FakeBugzilla
    bug: int
    env: dict[str, str]
    base_env: dict[str, str]
    push_log: Path
    pid_file: Path
    prod: FakeDockerflow | None = None
    stage: FakeDockerflow | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), *args]

    def full_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.base_env, **self.env, **self.extra, **(extra or {})}

    def run(self, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args),
            cwd=PROJECT_ROOT,
            env=self.full_env(extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def run_killable(self, *args: str) -> subprocess.CompletedProcess:
        """Run with the process id in `pid_file`, so a git hook can kill it mid-run."""
        process = subprocess.Popen(
            self.command(*args),
            cwd=PROJECT_ROOT,
            env=self.full_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid_file.write_text(str(process.pid))
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    # -- what is really there ---------------------------------------------------------------------
    def remote_tag(self, name: str = "101") -> str | None:
        return self.repo.remote_tags().get(name)

    def local_tag(self, name: str = "101") -> str | None:
        return self.repo.local_tags().get(name)

    def pushes(self, name: str = "101") -> int:
        if not self.push_log.exists():
            return 0
        return sum(
            line.endswith(f"refs/tags/{name}") for line in self.push_log.read_text().split("\n")
        )

    def show_comments(self, bug: int | None = None) -> list[str]:
        texts = [c["text"] for c in self.bz.comments(bug or self.bug)]
        return [t for t in texts if "(tag object " in t]

    def writes(self) -> int:
        return len(self.bz.writes())

    def assert_nothing_changed(self, result: subprocess.CompletedProcess) -> None:
        assert result.returncode != 0, result.stdout + result.stderr
        assert self.local_tag() is None
        assert self.remote_tag() is None
        assert self.pushes() == 0
        assert self.writes() == 0
        assert self.show_comments() == []

    def assert_complete(self) -> None:
        local = self.local_tag()
        assert local is not None and self.remote_tag() == local
        assert self.pushes() == 1
        assert len(self.show_comments()) == 1
        self.repo.git("tag", "-v", "101")


@pytest.fixture
def deploy(
    deploy_repo: DeployRepo,
    fake_bugzilla: FakeBugzilla,  # noqa: F811
    dockerflow: FakeDockerflow,
    dockerflow_stage: FakeDockerflow,
    env: dict[str, str],
    tmp_path: Path,
) -> Deploy:
    """Everything deploy.tag/status/watch/finish talk to: the repository with its bare remote
    (pushes logged by a post-receive hook), the fake Bugzilla with the open deploy bug of 101,
    fake prod and stage hosts, and the environment of the `invoke` runs."""
    bug = fake_bugzilla.add_bug(
        summary=SUMMARY.format("101"), product="Socorro", component="Infra", description="deploy"
    )
    push_log = tmp_path / "pushes.log"
    deploy_repo.install_remote_hook("post-receive", f"cat >> {push_log}\n")
    return Deploy(
        repo=deploy_repo,
        bz=fake_bugzilla,
        bug=bug,
        base_env=env,
        env={
            "GNUPGHOME": deploy_repo.env["GNUPGHOME"],
            "BUGZILLA_API_KEY": fake_bugzilla.key_for(RELENG),
            "INVOKE_BUGZILLA_URL": fake_bugzilla.url,
            "INVOKE_DEPLOY_REPO": str(deploy_repo.path),
            "INVOKE_DEPLOY_PROD_URL": dockerflow.url,
            "INVOKE_DEPLOY_STAGE_URL": dockerflow_stage.url,
        },
        push_log=push_log,
        prod=dockerflow,
        stage=dockerflow_stage,
        pid_file=tmp_path / "invoke.pid",
    )
