"""The changes of a deploy: non-merge commits between two revisions, and the bugs they name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lib.gitrepo import Background, GitRepo

_NUMBER = r"#?\d+\b"
#: Written so that each space can be matched in one way only: a pattern where it could go to
#: either of two neighbouring parts backtracks exponentially on a long ", , , ," run.
_SEPARATOR = r"[ \t]*(?:(?:,|&|\+|\band\b)[ \t]*)+"
#: "bug 123", "bug-123", "Bug 123: ...", "bug #123", "bugs 1, 2 & 3", "bug 1 and 2", "bugs: 4+5".
#: Matched against the lowercased message (faster than a case-insensitive pattern).
BUG_RE = re.compile(
    rf"\bbugs?[ \t]*[:\-]?[ \t]*({_NUMBER}(?:(?:{_SEPARATOR}|[ \t]+)(?:bugs?[ \t-]*)?{_NUMBER})*)"
)
_DIGITS = re.compile(r"\d+")
#: Bugzilla's bug ids are positive 32-bit integers; a longer number is not a bug reference.
MAX_BUG_ID = 2**31 - 1


def find_bugs(text: str) -> list[int]:
    """The bug numbers a commit message names, deduplicated and sorted."""
    lowered = text.lower()
    if "bug" not in lowered:
        return []
    groups = _find_bug_groups(lowered)
    if len(groups) == 1 and groups[0].isdigit():  # the common case: one bug, one number
        number = int(groups[0])
        return [number] if 0 < number <= MAX_BUG_ID else []
    found = set()
    for numbers in groups:
        found.update(map(int, _DIGITS.findall(numbers)))
    return sorted(n for n in found if 0 < n <= MAX_BUG_ID)


_find_bug_groups = BUG_RE.findall


@dataclass(slots=True)
class Commit:
    """One change of a deploy. Its fields, in this order, are its JSON form (orjson writes a
    dataclass's fields directly, several times faster than building a dict per commit)."""

    sha: str
    summary: str
    author: str
    bugs: list[int] = field(default_factory=list)
    #: The 7-character short sha (derived from `sha`).
    short: str = field(init=False)

    def __post_init__(self) -> None:
        self.short = self.sha[:7]

    def line(self) -> str:
        """The change line used in bugs and tag messages: `<sha7>: <summary> (<author>)`."""
        return f"{self.short}: {self.summary} ({self.author})"


@dataclass
class History:
    """The commits between two revisions, and whether the older one is an ancestor."""

    commits: list[Commit]
    #: `since` is an ancestor of `head` (or equal to it, or there is no `since`).
    since_is_ancestor: bool


@dataclass
class PendingHistory:
    """A history being listed by git in the background (see `start_history`)."""

    output: Background
    since: str | None
    head: str

    def result(self) -> History:
        """Wait for git, parsing its output as it arrives."""
        return _parse_log(self.output.chunks(), self.since, self.head)

    def cancel(self) -> None:
        self.output.cancel()


def start_history(repo: GitRepo, since: str | None, head: str) -> PendingHistory:
    """Start listing the non-merge commits reachable from `head` but not from `since` (all of
    them when None), oldest first; `.result()` waits for them.

    `since` and `head` are full shas. One `git log` both lists the commits and answers whether
    `since` is an ancestor of `head`: it is exactly when one of the listed commits (merges
    included) has it as a parent, since the commit after it on any path from `head` is
    reachable from `head` and not from `since`.
    """
    revs = [f"{since}..{head}"] if since else [head]
    # NUL between fields and (with -z) after each commit: the only byte a message can't hold.
    output = repo.start(
        "log",
        "-z",
        "--reverse",
        "--topo-order",
        "--no-color",
        "--no-show-signature",
        "--encoding=UTF-8",
        "--format=%H%x00%P%x00%an%x00%B",
        *revs,
        "--",
    )
    return PendingHistory(output, since, head)


def _parse_log(chunks: Iterable[str], since: str | None, head: str) -> History:
    """Parse `git log -z --format=%H%x00%P%x00%an%x00%B` output as it arrives."""
    commits = []
    since_is_ancestor = since is None or since == head
    fields: list[str] = []
    partial: list[str] = []  # the field still being written, in pieces (a message may be huge)
    for chunk in chunks:
        if "\0" not in chunk:
            partial.append(chunk)
            continue
        pieces = chunk.split("\0")
        if partial:
            partial.append(pieces[0])
            pieces[0] = "".join(partial)
        partial = [pieces.pop()]
        fields += pieces
        complete = len(fields) - len(fields) % 4
        for index in range(0, complete, 4):
            sha, parents, author, message = fields[index : index + 4]
            if since is not None and since in parents.split(" "):
                since_is_ancestor = True
            if " " in parents:
                continue  # a merge
            commits.append(Commit(sha.strip(), _summary(message), author, find_bugs(message)))
        del fields[:complete]
    return History(commits, since_is_ancestor)


def _summary(message: str) -> str:
    """The first line of a commit message (a bare carriage return ends a line too)."""
    text = message.strip()
    return text.splitlines()[0].strip() if text else "(no message)"


def commits_between(repo: GitRepo, since: str | None, head: str) -> list[Commit]:
    """Non-merge commits reachable from `head` but not from `since` (all of them when None),
    oldest first. `since` and `head` may be any revisions."""
    return start_history(repo, since, head).result().commits
