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


def commits_between(repo: GitRepo, since: str | None, head: str) -> list[Commit]:
    """Non-merge commits reachable from `head` but not from `since` (all of them when None),
    oldest first."""
    revs = [f"{since}..{head}"] if since else [head]
    # NUL between fields and (with -z) after each commit: the only byte a message can't hold.
    out = repo.read(
        "log",
        "-z",
        "--no-merges",
        "--reverse",
        "--topo-order",
        "--no-color",
        "--no-show-signature",
        "--encoding=UTF-8",
        "--format=%H%x00%an%x00%B",
        *revs,
        "--",
    )
    fields = out.split("\0")
    commits = []
    for index in range(0, len(fields) - 2, 3):
        sha, author, message = fields[index : index + 3]
        sha = sha.strip()
        text = message.strip()
        summary = text.split("\n", 1)[0].strip() if text else "(no message)"
        commits.append(Commit(sha=sha, summary=summary, author=author, bugs=find_bugs(message)))
    return commits
