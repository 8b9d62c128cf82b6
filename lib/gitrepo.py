"""Git: read-only probes and mutations (dry-run aware) on the service checkout.

Commands run through the git binary (the user's own configuration, signing and credential
helpers apply). Plain subprocess keeps this fast: importing GitPython alone costs more than
`git log` over ten thousand commits, and deploy.prepare is benchmarked against `git log`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lib.console import info
from lib.errors import UserError
from lib.redaction import child_environment

#: Never let git stop to ask for a password or passphrase on a terminal we don't own.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_NO_GIT = "git is not installed (no `git` on PATH)"
#: Variables that point git at another repository, index or history than the work tree it runs
#: in (set, for example, inside a git hook): the tasks work on the checkout they were given.
_REPOSITORY_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_GRAFT_FILE",
    "GIT_SHALLOW_FILE",
    "GIT_PREFIX",
)


def _first_line(text: str) -> str:
    """git's reason for a failure, on one line: a rejected ref (with what the remote's hooks
    said), else the first fatal/error line, else the first line; without a closing period, as
    our messages go on after it."""
    return _git_reason(text).rstrip(" .")


def _git_reason(text: str) -> str:
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
    #: Whether the repository is a shallow clone (None: not asked yet).
    shallow: bool | None = field(default=None, compare=False)

    def _command(self, args: tuple[str, ...]) -> dict:
        """Popen/run arguments for `git args` in this work tree (echoed under dry runs)."""
        if self.echo:
            info(f"dry-run: runs: git {shlex.join(args)}")
        return {
            "args": ["git", *args],
            "cwd": self.path,
            "env": {**child_environment(also_remove=_REPOSITORY_VARIABLES), **_GIT_ENV},
        }

    def _run(self, args: tuple[str, ...], input: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                **self._command(args),
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except FileNotFoundError:
            raise UserError(_NO_GIT) from None

    def _failed(self, args: tuple[str, ...], stderr: str, returncode: int = 1) -> UserError:
        if returncode < 0 and not stderr.strip():
            reason = f"git was stopped by signal {-returncode}"
        else:
            reason = _first_line(stderr)
        return UserError(f"`git {args[0]}` failed in {self.path}: {reason}")

    def read(self, *args: str, input: str | None = None) -> str:
        """Run a probe that must succeed; its stdout. A failure is a UserError with git's reason."""
        result = self._run(args, input=input)
        if result.returncode != 0:
            raise self._failed(args, result.stderr, result.returncode)
        return result.stdout

    def start(self, *args: str) -> Background:
        """Start a probe in the background (git works on another core meanwhile); read its
        output from the returned Background. A failure is raised as by `read`."""
        try:
            process = subprocess.Popen(
                **self._command(args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise UserError(_NO_GIT) from None
        return Background(self, args, process)

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

    def ref_commits(self, *patterns: str) -> dict[str, str | None]:
        """The refs matching `patterns` (for-each-ref patterns, e.g. "refs/tags"), each with the
        commit it names (None when it names no commit), in one git call."""
        out = self.read(
            "for-each-ref",
            "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)",
            *patterns,
        )
        refs: dict[str, str | None] = {}
        for line in out.split("\n"):  # (not splitlines: a tag name may hold U+2028 or U+0085)
            if not line:
                continue
            name, kind, sha, peeled_kind, peeled_sha = line.split("\0")
            if kind == "commit":
                refs[name] = sha
            elif peeled_kind == "commit":
                refs[name] = peeled_sha
            else:  # a tag of a tag (peeled one level only), of a tree, or of a blob
                refs[name] = self.rev_parse(name)
        return refs

    def rev_parse(self, rev: str) -> str | None:
        """The full sha of the commit `rev` names, or None."""
        out = self.try_read("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        return out.strip() if out else None

    def tags(self) -> list[str]:
        return self.read("tag", "--list").split()

    def dirty_paths(self) -> list[str]:
        """Paths that are modified, staged or untracked (ignored files excluded)."""
        return self.start_dirty_paths()()

    def start_dirty_paths(self) -> Callable[[], list[str]]:
        """`dirty_paths` in the background; call the result to wait for the paths."""
        pending = self.start("status", "--porcelain=v1", "-z", "--untracked-files=normal")

        def finish() -> list[str]:
            paths, entries = [], iter(pending.text().split("\0"))
            for entry in entries:
                if len(entry) < 4:
                    continue
                paths.append(entry[3:])
                if entry[0] in "RC":
                    next(entries, None)  # a rename's source path follows
            return paths

        return finish

    def is_shallow(self) -> bool:
        if self.shallow is None:
            out = self.try_read("rev-parse", "--is-shallow-repository") or ""
            self.shallow = out.strip() == "true"
        return self.shallow

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
            for line in result.stdout.split("\n")
            if "\t" in line
        ]

    def current_branch(self) -> str | None:
        out = self.try_read("symbolic-ref", "--quiet", "--short", "HEAD")
        return out.strip() if out else None

    def has_remote(self, remote: str) -> bool:
        return remote in self.read("remote").split()

    def fetch(self, remote: str, branch: str) -> None:
        """Fetch `branch` (into refs/remotes/REMOTE/BRANCH) and the tags from `remote`; a failure
        suggests --offline. The branch is named explicitly so that a branch the remote no longer
        has is an error, not a stale remote-tracking ref left from an earlier fetch."""
        if not self.has_remote(remote):
            raise UserError(
                f"the repository has no remote named {remote!r} (set deploy.remote, "
                f"or use --offline to skip the fetch)"
            )
        refspec = f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
        result = self._run(("fetch", "--tags", remote, refspec))
        if result.returncode != 0:
            if f"couldn't find remote ref refs/heads/{branch}" in result.stderr:
                raise UserError(f"remote {remote!r} has no branch {branch!r}")
            moved = re.search(r"\[rejected\]\s+(\S+)\s+->\s+\S+\s+\(would clobber", result.stderr)
            if moved:
                tag = moved.group(1)
                raise UserError(
                    f"tag {tag} on remote {remote!r} names another object than the local tag "
                    f"{tag}: a deploy tag was moved or remade; compare `git rev-parse {tag}` with "
                    f"`git ls-remote {remote} refs/tags/{tag}` and, if the remote's is right, run "
                    f"`git tag -d {tag} && git fetch {remote} tag {tag}` (not --offline: that "
                    f"would plan from the local tag)"
                )
            raise UserError(
                f"could not fetch from remote {remote!r}: {_first_line(result.stderr)}; "
                f"check the network or rerun with --offline"
            )

    def ahead_behind(self, local: str, upstream: str) -> tuple[int, int]:
        """How many commits `local` has that `upstream` lacks, and the reverse."""
        out = self.read("rev-list", "--left-right", "--count", f"{local}...{upstream}")
        ahead, behind = out.split()
        return int(ahead), int(behind)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._run(("merge-base", "--is-ancestor", ancestor, descendant)).returncode == 0


class Background:
    """A git command running in the background: iterate over its output as git writes it
    (`chunks`), take it whole (`text`), or stop it (`cancel`)."""

    def __init__(self, repo: GitRepo, args: tuple[str, ...], process: subprocess.Popen) -> None:
        import threading

        self.repo, self.args, self.process = repo, args, process
        assert process.stdout is not None and process.stderr is not None
        _widen_pipe(process.stdout.fileno())
        # git's messages are drained by a thread, so git never waits for us to read them.
        self._errors: list[bytes] = []
        self._error_reader = threading.Thread(
            target=lambda: self._errors.append(process.stderr.read()), daemon=True
        )
        self._error_reader.start()

    def chunks(self) -> Iterator[str]:
        """git's stdout, decoded as it arrives (a character cut between two reads comes out
        whole); a failure of git is raised at the end."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stdout = self.process.stdout
        assert stdout is not None
        with stdout:
            while data := os.read(stdout.fileno(), _PIPE_SIZE):
                yield decoder.decode(data)
            yield decoder.decode(b"", final=True)
        returncode = self.process.wait()
        self._error_reader.join()
        if returncode != 0:
            stderr = b"".join(self._errors).decode("utf-8", "replace")
            raise self.repo._failed(self.args, stderr, returncode)

    def text(self) -> str:
        return "".join(self.chunks())

    def cancel(self) -> None:
        """Stop git (when the result is no longer wanted)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


_PIPE_SIZE = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Let git write up to 1 MiB ahead of us (Linux; the default pipe holds 64 KiB)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # another platform, or over the system's limit: git just waits for us sooner


def open_repo(path: Path, *, echo: bool = False) -> GitRepo:
    """The work tree at `path`; a UserError when it is missing or not a git repository.
    `echo`: see GitRepo (dry runs print every git command, this probe included)."""
    if not path.exists():
        raise UserError(f"repository path {path} does not exist")
    if not path.is_dir():
        raise UserError(f"repository path {path} is not a directory")
    if path.name == ".git" and (path / "HEAD").is_file():
        path = path.parent  # --repo pointed at the .git directory of a work tree
    probe = GitRepo(path, echo=echo)._run(
        ("rev-parse", "--is-shallow-repository", "--show-toplevel")
    )
    if probe.returncode != 0:
        bare = GitRepo(path, echo=echo)._run(("rev-parse", "--is-bare-repository"))
        if bare.returncode == 0 and bare.stdout.strip() == "true":
            raise UserError(
                f"{path} is a bare repository (it has no working tree); point --repo (or "
                f"deploy.repo) at a checkout of the service"
            )
        raise UserError(
            f"{path} is not a git repository; point --repo (or deploy.repo) at the service's "
            f"checkout"
        )
    shallow, toplevel = probe.stdout.split("\n", 1)
    return GitRepo(Path(toplevel.removesuffix("\n")), echo=echo, shallow=shallow == "true")
