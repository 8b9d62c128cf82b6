"""Git: read-only probes and mutations (dry-run aware) on the service checkout.

Commands run through the git binary (the user's own configuration, signing and credential
helpers apply). Plain subprocess keeps this fast: importing GitPython alone costs more than
`git log` over ten thousand commits, and deploy.prepare is benchmarked against `git log`.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lib.console import info
from lib.errors import UserError
from lib.redaction import child_environment

#: Never let git stop to ask for a password or passphrase on a terminal we don't own.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _first_line(text: str) -> str:
    """git's reason for a failure, on one line: a rejected ref (with what the remote's hooks
    said), else the first fatal/error line, else the first line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    said = [line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:")]
    said = [line for line in said if line]
    for line in lines:
        if "[rejected]" in line or "[remote rejected]" in line or "would clobber" in line:
            reason = " ".join(line.lstrip("! ").split())
            return f"{reason}; the remote said: {said[0]}" if said else reason
    for line in lines:
        if line.startswith(("fatal: ", "error: ")):
            reason = line.removeprefix("fatal: ").removeprefix("error: ")
            return f"{reason}; the remote said: {said[0]}" if said else reason
    return lines[0] if lines else "no message"


@dataclass
class GitRepo:
    """A git work tree at `path` (its top level).

    With `echo` (dry runs), every command that runs is printed on stderr first, as
    `dry-run: runs: git ...`, so a dry run shows its read-only probes as well as the changes it
    would make (`write()` under dry prints `dry-run: would run: git ...` and runs nothing).
    """

    path: Path
    echo: bool = False

    def _run(self, args: tuple[str, ...], input: str | None = None) -> subprocess.CompletedProcess:
        if self.echo:
            info(f"dry-run: runs: git {shlex.join(args)}")
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.path,
                env={**child_environment(), **_GIT_ENV},
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except FileNotFoundError:
            raise UserError("git is not installed (no `git` on PATH)") from None

    def read(self, *args: str, input: str | None = None) -> str:
        """Run a probe that must succeed; its stdout. A failure is a UserError with git's reason."""
        result = self._run(args, input=input)
        if result.returncode != 0:
            raise UserError(f"`git {args[0]}` failed in {self.path}: {_first_line(result.stderr)}")
        return result.stdout

    def try_read(self, *args: str) -> str | None:
        """Run a probe that may fail; its stdout, or None on a non-zero exit."""
        result = self._run(args)
        return result.stdout if result.returncode == 0 else None

    def write(self, *args: str, dry: bool, input: str | None = None) -> str:
        """Run a command that changes something; under `dry`, print it and change nothing."""
        if dry:
            info(f"dry-run: would run: git {shlex.join(args)}")
            return ""
        return self.read(*args, input=input)

    def rev_parse(self, rev: str) -> str | None:
        """The full sha of the commit `rev` names, or None."""
        out = self.try_read("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        return out.strip() if out else None

    def tags(self) -> list[str]:
        return self.read("tag", "--list").split()

    def dirty_paths(self) -> list[str]:
        """Paths that are modified, staged or untracked (ignored files excluded)."""
        out = self.read("status", "--porcelain=v1", "-z", "--untracked-files=normal")
        paths, entries = [], iter(out.split("\0"))
        for entry in entries:
            if len(entry) < 4:
                continue
            paths.append(entry[3:])
            if entry[0] in "RC":
                next(entries, None)  # a rename's source path follows
        return paths

    def is_shallow(self) -> bool:
        return (self.try_read("rev-parse", "--is-shallow-repository") or "").strip() == "true"

    def remote_tags(self, remote: str) -> list[str]:
        """The tag names on `remote` (asks the remote; a failure suggests --offline)."""
        result = self._run(("ls-remote", "--tags", "--refs", remote))
        if result.returncode != 0:
            raise UserError(
                f"could not list the tags of remote {remote!r}: {_first_line(result.stderr)}; "
                f"check the network or rerun with --offline"
            )
        return [
            line.split("\t", 1)[1].removeprefix("refs/tags/")
            for line in result.stdout.splitlines()
            if "\t" in line
        ]

    def current_branch(self) -> str | None:
        out = self.try_read("symbolic-ref", "--quiet", "--short", "HEAD")
        return out.strip() if out else None

    def has_remote(self, remote: str) -> bool:
        return remote in self.read("remote").split()

    def fetch(self, remote: str) -> None:
        """Fetch branches and tags from `remote`; a failure suggests --offline."""
        if not self.has_remote(remote):
            raise UserError(
                f"the repository has no remote named {remote!r} (set deploy.remote, "
                f"or use --offline to skip the fetch)"
            )
        result = self._run(("fetch", "--tags", remote))
        if result.returncode != 0:
            raise UserError(
                f"could not fetch from remote {remote!r}: {_first_line(result.stderr)}; "
                f"check the network or rerun with --offline"
            )

    def ahead_behind(self, local: str, upstream: str) -> tuple[int, int]:
        """How many commits `local` has that `upstream` lacks, and the reverse."""
        out = self.read("rev-list", "--left-right", "--count", f"{local}...{upstream}")
        ahead, behind = out.split()
        return int(ahead), int(behind)

    def start_is_ancestor(self, ancestor: str, descendant: str) -> Callable[[], bool]:
        """Start `is_ancestor` in the background; call the result to wait for the answer.

        On a large history it walks as many commits as the `git log` one runs beside it, so the
        two run in parallel instead of one after the other.
        """
        args = ("merge-base", "--is-ancestor", ancestor, descendant)
        if self.echo:
            info(f"dry-run: runs: git {shlex.join(args)}")
        process = subprocess.Popen(
            ["git", *args],
            cwd=self.path,
            env={**child_environment(), **_GIT_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return lambda: process.wait() == 0

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._run(("merge-base", "--is-ancestor", ancestor, descendant)).returncode == 0


def open_repo(path: Path) -> GitRepo:
    """The work tree at `path`; a UserError when it is missing or not a git repository."""
    if not path.exists():
        raise UserError(f"repository path {path} does not exist")
    if not path.is_dir():
        raise UserError(f"repository path {path} is not a directory")
    if path.name == ".git" and (path / "HEAD").is_file():
        path = path.parent  # --repo pointed at the .git directory of a work tree
    probe = GitRepo(path)._run(("rev-parse", "--show-toplevel"))
    if probe.returncode != 0:
        raise UserError(f"{path} is not a git repository (set deploy.repo or pass --repo)")
    return GitRepo(Path(probe.stdout.strip()))
