"""The deploy harness: everything deploy.tag/status/watch/finish talk to, for end-to-end tests.

`deploy` (fixture): the `deploy_repo` checkout with its bare remote (tests/gitrepos.py; pushes
logged by a post-receive hook), the fake Bugzilla with the open deploy bug of 101, fake prod and
stage Dockerflow hosts, and `run()` for the real `invoke` binary in a clean environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import clean_environ, run_invoke
from tests.fake_bugzilla import (  # noqa: F401 (fixtures)
    RELENG,
    FakeBugzilla,
    JournalEntry,
    fake_bugzilla,
    fake_bugzilla_upstream,
)
from tests.fake_dockerflow import FakeDockerflow
from tests.gitrepos import (  # noqa: F401 (fixtures, registered through this plugin)
    GpgKey,
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
        return run_invoke(
            *args, cwd=PROJECT_ROOT, env=self.full_env(extra), search_root=PROJECT_ROOT
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


@dataclass
class TaggedTemplate:
    """What one real `invoke deploy.tag 101 --yes` made: the checkout with the signed tag, and
    the Bugzilla request that posted the `git show` comment."""

    checkout: Path
    bug: int
    comment_request: JournalEntry


@pytest.fixture(scope="session")
def _tagged_template(
    tmp_path_factory: pytest.TempPathFactory,
    _deploy_repo_template: Path,  # noqa: F811
    gpg_key: GpgKey,  # noqa: F811
) -> TaggedTemplate:
    """deploy.tag 101 run once per session, for real, on a copy of the deploy repository (so on
    the same commits as every test's copy), against a fake Bugzilla of its own."""
    root = tmp_path_factory.mktemp("tagged-template")
    for name in ("service", "origin.git"):
        shutil.copytree(_deploy_repo_template / name, root / name, symlinks=True)
    repo = ServiceRepo(root, create=False, env={"GNUPGHOME": str(gpg_key.home)})
    repo.git("remote", "set-url", "origin", str(repo.remote_path))
    home = root / "home"
    home.mkdir()
    server = FakeBugzilla("bmo").start()
    try:
        bug = server.add_bug(
            summary=SUMMARY.format("101"),
            product="Socorro",
            component="Infra",
            description="deploy",
        )
        env = {
            **clean_environ(home),
            "GNUPGHOME": str(gpg_key.home),
            "BUGZILLA_API_KEY": server.key_for(RELENG),
            "INVOKE_BUGZILLA_URL": server.url,
            "INVOKE_DEPLOY_REPO": str(repo.path),
        }
        result = run_invoke(
            "deploy.tag", "101", "--yes", cwd=PROJECT_ROOT, env=env, search_root=PROJECT_ROOT
        )
        assert result.returncode == 0, result.stderr
        (comment_request,) = server.writes()
    finally:
        server.stop()
    return TaggedTemplate(repo.path, bug, comment_request)


def replay_tag(deploy: Deploy, template: TaggedTemplate) -> None:
    """Bring the results of the template's deploy.tag 101 into this test's systems the way
    deploy.tag made them: the signed tag into the checkout, a push of only refs/tags/101 to the
    remote (through its hooks), the same comment request to this test's Bugzilla (API key in
    the header). The tag message and comment name the template's Bugzilla host."""
    import requests

    assert deploy.bug == template.bug  # each fake Bugzilla numbers its bugs the same way
    deploy.repo.git("fetch", "-q", str(template.checkout), "refs/tags/101:refs/tags/101")
    deploy.repo.push("refs/tags/101")
    sent = template.comment_request
    response = requests.request(
        sent.method,
        deploy.bz.base + sent.target,
        json=sent.body,
        headers={"X-BUGZILLA-API-KEY": deploy.bz.key_for(RELENG)},
        timeout=30,
    )
    assert response.ok, response.text
