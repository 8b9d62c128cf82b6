"""Bug numbers in commit messages, and the commit listing from real history."""

import pytest

from lib.changes import commits_between, find_bugs
from lib.gitrepo import open_repo


@pytest.mark.parametrize(
    ("message", "bugs"),
    [
        ("bug 123", [123]),
        ("bug-123: fix crash", [123]),
        ("Bug 123: fix crash", [123]),
        ("bug #123 fix", [123]),
        ("bugs 1, 2 & 3: several", [1, 2, 3]),
        ("bug 111, 222, & 333", [111, 222, 333]),
        ("bug 7 and 8", [7, 8]),
        ("bug-111, bug-222, bug-333", [111, 222, 333]),
        ("Fix bug 5 (bug 5 again)", [5]),
        ("BUG 1900001 - uppercase", [1900001]),
        ("no bug here", []),
        ("debug 123 output", []),
        ("bugfix 12", []),
        ("update 3 files", []),
        ("", []),
        ("Bug 10: title\n\nAlso fixes bug 4.", [4, 10]),
    ],
)
def test_find_bugs(message, bugs):
    assert find_bugs(message) == bugs


def test_commits_between_skips_merges_keeps_order_and_non_ascii(service_repo):
    base = service_repo.head()
    service_repo.commit("bug 10: first", author=("Zoë Ångström", "zoe@example.com"))
    service_repo.merge_branch("feature", ["bug 11: on a branch"])
    service_repo.commit("no bug number")
    commits = commits_between(open_repo(service_repo.path), base, "HEAD")
    assert [c.summary for c in commits] == ["bug 10: first", "bug 11: on a branch", "no bug number"]
    assert commits[0].author == "Zoë Ångström"
    assert [c.bugs for c in commits] == [[10], [11], []]
    assert all(len(c.short) == 7 and c.sha.startswith(c.short) for c in commits)
