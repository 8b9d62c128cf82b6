"""The changes of a deploy: non-merge commits between two revisions, and the bugs they name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lib.gitrepo import Background, GitRepo

#: A bug number: ASCII digits ("1٢3" is none), not part of a date or version ("2024-01-01",
#: "12.5"), optionally written "#123".
_NUMBER = r"#?[0-9]+\b(?![.\-][0-9])"
_LEAD = r"[ \t]*[:\-]?[ \t]*"
#: Separators, written so that each space can be matched in one way only: a pattern where it
#: could go to either of two neighbouring parts backtracks exponentially on a long ", , , ," run.
_COMMAS = r"[ \t]*(?:[,&][ \t]*)+"
_ANY_SEPARATOR = r"[ \t]*(?:(?:[,&+]|\band\b)[ \t]*)+"
#: After "bugs", any list: "bugs 1, 2 & 3", "bugs 4+5", "bugs 1 and 2".
_PLURAL_NEXT = rf"{_ANY_SEPARATOR}(?:bugs?[ \t\-]*)?{_NUMBER}"
#: After a single "bug", a list continues with commas or "&" ("bug 111, 222 & 333",
#: "bug-1, bug-2"), with "and"/"+" only before another "bug" ("bug 1 and bug 2") or before a
#: number that ends the phrase ("bug 7 and 8", "bug 7 and 8: ..."): in "bug 1900000 and 3
#: related issues" or "Bug 1900000 + 2 tests" the 3 and the 2 are no bugs. Bare spaces never
#: separate bug numbers ("bug 1900000 64 bit").
_SINGULAR_NEXT = (
    rf"{_COMMAS}(?:bug[ \t\-]*)?{_NUMBER}|{_ANY_SEPARATOR}bugs?[ \t\-]*{_NUMBER}"
    rf"|{_ANY_SEPARATOR}{_NUMBER}(?![ \t]*(?!and\b)\w)"
)
#: "bug 123", "bug-123", "Bug 123: ...", "bug #123", "bugs 1, 2 & 3", "bug 1 and bug 2".
#: Matched against the lowercased message (faster than a case-insensitive pattern); group 2
#: holds the numbers.
BUG_RE = re.compile(rf"\bbug(s)?{_LEAD}({_NUMBER}(?:(?(1){_PLURAL_NEXT}|(?:{_SINGULAR_NEXT})))*)")
_DIGITS = re.compile(r"[0-9]+")
#: Bugzilla's bug ids are positive 32-bit integers; a longer number is not a bug reference.
MAX_BUG_ID = 2**31 - 1


def find_bugs(text: str) -> list[int]:
    """The bug numbers a commit message names, deduplicated and sorted."""
    lowered = text.lower()
    if "bug" not in lowered:
        return []
    groups = _find_bug_groups(lowered)
    if len(groups) == 1 and groups[0][1].isdigit():  # the common case: one bug, one number
        number = int(groups[0][1])
        return [number] if 0 < number <= MAX_BUG_ID else []
    found = set()
    for _plural, numbers in groups:
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
            if not author.isprintable():
                author = _visible(author)
            commits.append(Commit(sha.strip(), _summary(message), author, find_bugs(message)))
        del fields[:complete]
    return History(commits, since_is_ancestor)


def _summary(message: str) -> str:
    """The first line of a commit message (a bare carriage return ends a line too)."""
    text = message.strip()
    summary = text.splitlines()[0].strip() if text else "(no message)"
    return summary if summary.isprintable() else _visible(summary)


#: Control characters (C0 but tab, DEL, C1): an escape sequence in a commit message would act on
#: the terminal that prints the change list and would be posted to Bugzilla as is.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    """`text` with its control characters written out (ESC as \\x1b) and tabs as spaces."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\t", " "))


def commits_between(repo: GitRepo, since: str | None, head: str) -> list[Commit]:
    """Non-merge commits reachable from `head` but not from `since` (all of them when None),
    oldest first. `since` and `head` may be any revisions."""
    return start_history(repo, since, head).result().commits
