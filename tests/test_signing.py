"""lib/signing.py against real GnuPG and ssh-keygen: proof of signing without touching any ref."""

from __future__ import annotations

import os
import subprocess

import pytest

from lib.errors import UserError
from lib.signing import check_signing, signing_setup
from tests.gitrepos import ServiceRepo, make_gpg_home, stop_gpg_home


def _refs(repo: ServiceRepo) -> str:
    return repo.git("for-each-ref")


@pytest.fixture
def gpg_env(monkeypatch, deploy_repo: ServiceRepo):
    monkeypatch.setenv("GNUPGHOME", deploy_repo.env["GNUPGHOME"])
    return deploy_repo


def test_gpg_signing_is_proved_without_touching_refs(gpg_env, gpg_key):
    repo = gpg_env
    before = _refs(repo)
    setup = check_signing(repo.path)
    assert setup.format == "openpgp"
    assert setup.key == gpg_key.fingerprint
    assert _refs(repo) == before
    assert repo.git("status", "--porcelain") == ""


def test_gpg_without_signingkey_uses_the_committer_identity(gpg_env, monkeypatch):
    repo = gpg_env
    repo.git("config", "--unset", "user.signingkey")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "deployer@example.com")
    assert check_signing(repo.path).key == ""


def test_no_secret_key_is_refused_with_a_fix(deploy_repo, empty_gpg_home, monkeypatch):
    deploy_repo.git("config", "--unset", "user.signingkey")
    monkeypatch.setenv("GNUPGHOME", str(empty_gpg_home.home))
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "deployer@example.com")
    with pytest.raises(UserError) as error:
        check_signing(deploy_repo.path)
    assert "no usable GPG secret key for committer deployer@example.com" in str(error.value)
    assert "user.signingkey" in str(error.value)


def test_signingkey_not_in_keyring_is_refused(deploy_repo, empty_gpg_home, monkeypatch):
    monkeypatch.setenv("GNUPGHOME", str(empty_gpg_home.home))
    with pytest.raises(UserError, match="no usable GPG secret key for user.signingkey"):
        check_signing(deploy_repo.path)


def test_passphrase_without_terminal_gives_the_gpg_tty_hint(deploy_repo, monkeypatch):
    key = make_gpg_home(with_key=False)
    try:
        env = {**os.environ, "GNUPGHOME": str(key.home)}
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "secret",
                "--quick-gen-key",
                "Deployer <deployer@example.com>",
                "ed25519",
                "sign",
                "never",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        deploy_repo.git("config", "--unset", "user.signingkey")
        monkeypatch.setenv("GNUPGHOME", str(key.home))
        monkeypatch.setenv("GIT_COMMITTER_EMAIL", "deployer@example.com")
        monkeypatch.delenv("GPG_TTY", raising=False)
        with pytest.raises(UserError) as error:
            check_signing(deploy_repo.path)
        assert "GPG_TTY" in str(error.value)
        assert "gpg-agent" in str(error.value)
    finally:
        stop_gpg_home(key)


def test_ssh_signing_is_proved(deploy_repo, ssh_signing_key):
    deploy_repo.use_ssh(ssh_signing_key)
    before = _refs(deploy_repo)
    setup = check_signing(deploy_repo.path)
    assert (setup.format, setup.key, setup.program) == (
        "ssh",
        str(ssh_signing_key.public),
        "ssh-keygen",
    )
    assert _refs(deploy_repo) == before


def test_ssh_without_signingkey_is_refused(deploy_repo, ssh_signing_key):
    deploy_repo.use_ssh(ssh_signing_key)
    deploy_repo.git("config", "--unset", "user.signingkey")
    with pytest.raises(UserError, match="user.signingkey is not set"):
        check_signing(deploy_repo.path)


def test_ssh_key_file_missing_is_refused(deploy_repo, ssh_signing_key, tmp_path):
    deploy_repo.use_ssh(ssh_signing_key)
    deploy_repo.git("config", "user.signingkey", str(tmp_path / "nope.pub"))
    with pytest.raises(UserError, match="does not exist"):
        check_signing(deploy_repo.path)


def test_ssh_without_allowed_signers_cannot_verify(deploy_repo, ssh_signing_key):
    deploy_repo.use_ssh(ssh_signing_key)
    deploy_repo.git("config", "--unset", "gpg.ssh.allowedSignersFile")
    with pytest.raises(UserError, match="allowedSignersFile"):
        check_signing(deploy_repo.path)


def test_unknown_format_is_refused(deploy_repo):
    deploy_repo.git("config", "gpg.format", "pgp2")
    with pytest.raises(UserError, match="gpg.format is 'pgp2'"):
        signing_setup(deploy_repo.path)


def test_missing_gpg_program_is_refused(deploy_repo, monkeypatch, gpg_key):
    monkeypatch.setenv("GNUPGHOME", str(gpg_key.home))
    deploy_repo.git("config", "gpg.program", "/nonexistent/gpg")
    with pytest.raises(UserError, match="is not installed"):
        check_signing(deploy_repo.path)
