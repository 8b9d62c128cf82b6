"""Tag signing: which key git signs with, and proof that it works before any tag is made.

`git tag -s` signs with the user's own git configuration: `gpg.format` (openpgp by default, or
ssh, or x509), `user.signingkey` (for openpgp it defaults to the committer's identity), and
`gpg.program` / `gpg.<format>.program`. `check_signing` reads that configuration, explains what is
missing, then proves the whole path by having git sign a throwaway commit object
(`git commit-tree -S`, which writes one unreferenced object and touches no ref) and verifying it
(`git verify-commit`), so the later `git tag -s` and `git tag -v` cannot fail for a configuration
reason after the deploy has started.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.console import info
from lib.errors import UserError
from lib.gitrepo import GitRepo

#: Markers in gpg / ssh-keygen output that mean "could not ask for the passphrase".
_NO_TERMINAL_HINTS = (
    "inappropriate ioctl for device",
    "no pinentry",
    "cannot open '/dev/tty'",
    "cannot open /dev/tty",
    "no passphrase given",
    "operation cancelled",
    "screen or window too small",
    "timeout",
)
_NO_KEY_HINTS = ("no secret key", "secret key not available", "unusable secret key")

_PASSPHRASE_HINT = (
    "gpg could not ask for the key's passphrase (no terminal for pinentry): run "
    "`export GPG_TTY=$(tty)` in this shell, or unlock the key in gpg-agent first "
    "(e.g. `echo test | gpg --clearsign >/dev/null`), then rerun"
)


@dataclass(frozen=True)
class SigningSetup:
    """How git will sign: the format, the key, and the program that signs."""

    format: str  # "openpgp", "ssh" or "x509"
    key: str  # a GPG key id / user id, an SSH key file or literal, or "" for the default
    program: str

    def describe(self) -> str:
        key = self.key or "(the committer's identity)"
        return f"gpg.format={self.format}, key {key}, program {self.program}"


def _as_repo(where: Path | GitRepo) -> GitRepo:
    return where if isinstance(where, GitRepo) else GitRepo(Path(where))


def _git(repo: GitRepo, *args: str) -> subprocess.CompletedProcess:
    """Run git in the repository (printed first when `repo.echo`, i.e. in a dry run)."""
    return repo._run(args)


def _run_signer(repo: GitRepo, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run the signing program itself (gpg), printed first in a dry run like git commands."""
    if repo.echo:
        info(f"dry-run: runs: {shlex.join(argv)}")
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", **kwargs)


def _config(repo: GitRepo, key: str) -> str:
    result = _git(repo, "config", "--get", key)
    return result.stdout.strip() if result.returncode == 0 else ""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("hint:"):
            return line.removeprefix("error: ").removeprefix("fatal: ")
    return "no message"


def committer_email(where: Path | GitRepo) -> str:
    """The committer's e-mail as git sees it (the default openpgp signing identity)."""
    result = _git(_as_repo(where), "var", "GIT_COMMITTER_IDENT")
    if result.returncode != 0:
        raise UserError(
            "git has no committer identity: set `git config user.name` and `git config user.email`"
        )
    ident = result.stdout
    return ident[ident.find("<") + 1 : ident.find(">")] if "<" in ident else ident.strip()


def signing_setup(where: Path | GitRepo) -> SigningSetup:
    """Read the signing configuration that `git tag -s` will use in the repository `where`."""
    repo = _as_repo(where)
    fmt = _config(repo, "gpg.format") or "openpgp"
    if fmt not in ("openpgp", "ssh", "x509"):
        raise UserError(f"git config gpg.format is {fmt!r}; git supports openpgp, ssh and x509")
    default_program = {"openpgp": "gpg", "ssh": "ssh-keygen", "x509": "gpgsm"}[fmt]
    program = (
        _config(repo, f"gpg.{fmt}.program")
        or (_config(repo, "gpg.program") if fmt == "openpgp" else "")
        or default_program
    )
    return SigningSetup(format=fmt, key=_config(repo, "user.signingkey"), program=program)


def _check_openpgp_key(repo: GitRepo, setup: SigningSetup) -> None:
    key = setup.key or committer_email(repo)
    try:
        result = _run_signer(
            repo,
            [setup.program, "--batch", "--with-colons", "--list-secret-keys", "--", key],
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise UserError(
            f"signing program {setup.program!r} is not installed (git config gpg.program); "
            f"install GnuPG or set gpg.format=ssh with user.signingkey"
        ) from None
    usable = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("sec:", "ssb:")) and line.split(":")[1] not in ("r", "e", "d", "i")
    ]
    if result.returncode != 0 or not usable:
        where = f"user.signingkey {setup.key}" if setup.key else f"committer {key}"
        raise UserError(
            f"no usable GPG secret key for {where} (gpg.format openpgp): create one "
            f"(`gpg --quick-gen-key`), or set `git config user.signingkey KEYID`, or sign with SSH "
            f"(`git config gpg.format ssh` and `git config user.signingkey ~/.ssh/id_ed25519.pub`)"
        )


def _check_ssh_key(repo: GitRepo, setup: SigningSetup) -> None:
    path = repo.path
    if not setup.key and not _config(repo, "gpg.ssh.defaultKeyCommand"):
        raise UserError(
            "gpg.format is ssh but user.signingkey is not set: "
            "`git config user.signingkey ~/.ssh/id_ed25519.pub`"
        )
    literal = setup.key.startswith(("key::", "ssh-", "ecdsa-", "sk-"))
    if setup.key and not literal:
        key_path = Path(os.path.expanduser(setup.key))
        if not key_path.is_absolute():
            key_path = path / key_path
        if not key_path.is_file():
            raise UserError(f"SSH signing key {setup.key} (user.signingkey) does not exist")
    allowed = _config(repo, "gpg.ssh.allowedSignersFile")
    if not allowed or not Path(os.path.expanduser(allowed)).is_file():
        raise UserError(
            "SSH-signed tags cannot be verified (`git tag -v`) without an allowed-signers file: "
            "set `git config gpg.ssh.allowedSignersFile ~/.ssh/allowed_signers` with a line "
            "'EMAIL KEY' for your signing key"
        )


def _openpgp_diagnostics(repo: GitRepo, setup: SigningSetup) -> str:
    """gpg's own stderr for the signing git attempted (git only says "gpg failed to sign")."""
    key = setup.key or committer_email(repo)
    try:
        result = _run_signer(
            repo,
            [setup.program, "--status-fd=2", "-bsau", key],
            input="releng-tasks signing check\n",
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"\n{exc}"
    return "\n" + "\n".join(
        line for line in result.stderr.splitlines() if not line.startswith("[GNUPG:]")
    )


def _explain_failure(setup: SigningSetup, stderr: str) -> str:
    lowered = stderr.lower()
    if setup.format == "openpgp" and any(hint in lowered for hint in _NO_TERMINAL_HINTS):
        return _PASSPHRASE_HINT
    gpg_lines = [line.strip() for line in stderr.splitlines() if line.startswith("gpg:")]
    detail = gpg_lines[-1] if gpg_lines else _first_line(stderr)
    if any(hint in lowered for hint in _NO_KEY_HINTS):
        return f"no usable secret key for signing ({setup.describe()}): {detail}"
    return f"git could not sign with {setup.describe()}: {detail}"


def check_signing(where: Path | GitRepo, tree_of: str = "HEAD") -> SigningSetup:
    """Prove that git can sign and verify with the user's configuration; UserError otherwise.

    Signs a throwaway commit of `tree_of`'s tree with `git commit-tree -S` (no ref changes) and
    verifies it with `git verify-commit`, exactly the machinery `git tag -s` / `git tag -v` use.
    `where` is a repository path, or a GitRepo (whose `echo` prints each command in a dry run).
    """
    repo = _as_repo(where)
    setup = signing_setup(repo)
    if setup.format == "openpgp":
        _check_openpgp_key(repo, setup)
    elif setup.format == "ssh":
        _check_ssh_key(repo, setup)
    signed = _git(
        repo, "commit-tree", "-S", "-m", "releng-tasks signing check", f"{tree_of}^{{tree}}"
    )
    if signed.returncode != 0:
        stderr = signed.stderr
        if setup.format == "openpgp":
            stderr += _openpgp_diagnostics(repo, setup)
        raise UserError(_explain_failure(setup, stderr))
    verified = _git(repo, "verify-commit", signed.stdout.strip())
    if verified.returncode != 0:
        raise UserError(
            f"git signed a test object with {setup.describe()} but cannot verify the signature "
            f"(`git tag -v` would fail too): {_first_line(verified.stderr)}"
        )
    return setup
