"""The changes of a deploy: non-merge commits between two revisions, and the bugs they name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lib.gitrepo import GitRepo

_NUMBER = r"#?\d+\b"
_SEPARATOR = r"(?:[ \t]*(?:,|&|\+|\band\b)[ \t]*)+"
#: "bug 123", "bug-123", "Bug 123: ...", "bug #123", "bugs 1, 2 & 3", "bug 1 and 2", "bugs: 4+5".
BUG_RE = re.compile(
    rf"\bbugs?[ \t]*[:\-]?[ \t]*({_NUMBER}(?:(?:{_SEPARATOR}|[ \t]+)(?:bugs?[ \t-]*)?{_NUMBER})*)",
    re.IGNORECASE,
)


_DIGITS = re.compile(r"\d+")


def find_bugs(text: str) -> list[int]:
    """The bug numbers a commit message names, deduplicated and sorted."""
    if "bug" not in text.lower():
        return []
    found = {int(n) for match in BUG_RE.findall(text) for n in _DIGITS.findall(match)}
    return sorted(found)


@dataclass
class Commit:
    sha: str
    summary: str
    author: str
    bugs: list[int] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.sha[:7]

    def to_json(self) -> dict:
        return {
            "sha": self.sha,
            "short": self.short,
            "summary": self.summary,
            "author": self.author,
            "bugs": self.bugs,
        }

    def line(self) -> str:
        """The change line used in bugs and tag messages: `<sha7>: <summary> (<author>)`."""
        return f"{self.short}: {self.summary} ({self.author})"


_FIELD = "\x1f"
_RECORD = "\x1e"


def commits_between(repo: GitRepo, since: str | None, head: str) -> list[Commit]:
    """Non-merge commits reachable from `head` but not from `since` (all of them when None),
    oldest first."""
    revs = [f"{since}..{head}"] if since else [head]
    out = repo.read(
        "log",
        "--no-merges",
        "--reverse",
        "--topo-order",
        "--no-color",
        "--encoding=UTF-8",
        f"--format=%H{_FIELD}%an{_FIELD}%B{_RECORD}",
        *revs,
        "--",
    )
    commits = []
    for record in out.split(_RECORD):
        record = record.lstrip("\n")
        if not record:
            continue
        sha, author, message = record.split(_FIELD, 2)
        summary = message.strip().split("\n", 1)[0].strip() if message.strip() else "(no message)"
        commits.append(Commit(sha=sha, summary=summary, author=author, bugs=find_bugs(message)))
    return commits
