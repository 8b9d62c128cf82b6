"""The deploy harness: everything deploy.tag/status/watch/finish talk to, for end-to-end tests.

`deploy` (fixture): the `deploy_repo` checkout with its bare remote (tests/gitrepos.py; pushes
logged by a post-receive hook), the fake Bugzilla with the open deploy bug of 101, fake prod and
stage Dockerflow hosts, and `run()` for the real `invoke` binary in a clean environment.
"""

from __future__ import annotations

import subprocess
import sys
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
from tests.gitrepos import (  # noqa: F401 (fixtures, registered through this plugin)
    ServiceRepo,
    _deploy_repo_template,
    deploy_repo,
    empty_gpg_home,
    gpg_key,
    ssh_signing_key,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SUMMARY = "socorro deploy: {}"


@dataclass
class Deploy:
    repo: ServiceRepo
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
    deploy_repo: ServiceRepo,  # noqa: F811
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
