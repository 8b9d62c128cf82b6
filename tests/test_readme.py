"""The README's two commands: the main job works on a fresh clone, and CI runs the test command."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT, run_invoke

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_the_install_and_test_commands():
    install, test = readme_commands()
    assert "pip install -r requirements.txt" in install and install.endswith(
        "invoke deploy.prepare"
    )
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines(), "the README's test command must be what .ci/run runs"


def test_deploy_prepare_runs_with_no_configuration_in_a_fresh_clone(tmp_path, env):
    """What the README's first command does after installing: prepare in a clone of this project."""
    branches = subprocess.run(
        ["git", "branch", "--list", "main"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout
    if "main" not in branches:
        pytest.skip("this checkout has no local main branch to clone")
    clone = tmp_path / "releng-tasks"
    subprocess.run(
        ["git", "clone", "--quiet", "--branch", "main", str(PROJECT_ROOT), str(clone)],
        check=True,
        env=env,
    )
    result = run_invoke("deploy.prepare", cwd=clone, env=env)
    assert result.returncode == 0, result.stderr
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    assert "socorro deploy: 1" in result.stdout  # no deploy tag yet: the first deploy
    assert f"(next tag: `1` - `{head[:7]}`)" in result.stdout
    assert "enter_bug.cgi?" in result.stdout
