"""Bug numbers in commit messages, and the commit listing from real history."""

import subprocess

import pytest

from lib.changes import commits_between, find_bugs, start_history
from lib.errors import UserError
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
        ("bug 111 & 222", [111, 222]),
        ("bugs: 4+5", [4, 5]),
        ("bug 1 and bug 2", [1, 2]),
        ("bug 7 and 8: fix", [7, 8]),
        ("bug 7 and 8 and 9", [7, 8, 9]),
        ("bugs 1 and 2 are fixed", [1, 2]),
        ("bug 1234567 and bug 1234568", [1234567, 1234568]),
        ("bug 5.", [5]),
    ],
)
def test_find_bugs(message, bugs):
    assert find_bugs(message) == bugs


@pytest.mark.parametrize(
    ("message", "bugs"),
    [
        ("Fix bug 1900000 and 3 related issues", [1900000]),
        ("Bug 1900000 + 2 tests", [1900000]),
        ("bug 1900000 64 bit", [1900000]),
        ("bug 5 and 2024 other", [5]),
        ("bug 1 2024-01-01", [1]),
        ("bug 1 and 2 and 3 more", [1, 2]),
        ("bug 12.5 release", []),
        ("bug 1\u06623", []),
        ("bug 123abc", []),
    ],
)
def test_find_bugs_leaves_out_numbers_that_are_not_bugs(message, bugs):
    """Regression: counts, sizes, dates and other scripts' digits after a bug number were taken
    as bugs (with --needinfo, their assignees would have been asked to verify)."""
    assert find_bugs(message) == bugs


def test_control_characters_of_messages_and_authors_are_written_out(invoke, service_repo):
    """Regression: an escape sequence in a commit message (or author name) reached the terminal
    printing the change list, and the deploy bug, as is."""
    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.commit(
        "bug 12: \x1b[31mred\x1b[0m\ttitle", author=("Eve\x1b[1m Smith", "eve@example.com")
    )
    result = invoke("deploy.prepare", "--repo", str(service_repo.path), "--offline")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "`: bug 12: \\x1b[31mred\\x1b[0m title (Eve\\x1b[1m Smith)" in result.stdout


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


@pytest.mark.parametrize(
    ("message", "bugs"),
    [
        ("bug 0: not a bug id", []),
        ("bug 2147483647: the largest id Bugzilla can hold", [2147483647]),
        ("bug 2147483648 is beyond any Bugzilla id", []),
        ("bug 123456789012345678901234567890: a long number", []),
        ("bug 007: leading zeros", [7]),
        ("BuG 9, BUGS 10 & 11", [9, 10, 11]),
    ],
)
def test_find_bugs_keeps_only_numbers_that_can_be_bug_ids(message, bugs):
    assert find_bugs(message) == bugs


def _history(repo_path, since, head):
    repo = open_repo(repo_path)
    return start_history(repo, repo.rev_parse(since), repo.rev_parse(head)).result()


def test_history_knows_whether_the_older_revision_is_an_ancestor(service_repo):
    service_repo.commit("base")
    service_repo.tag("100")
    service_repo.commit("bug 1: after the tag")
    assert _history(service_repo.path, "100", "HEAD").since_is_ancestor
    assert _history(service_repo.path, "HEAD", "HEAD").since_is_ancestor  # nothing between
    behind = _history(service_repo.path, "HEAD", "100")  # the head is older than the tag
    assert not behind.since_is_ancestor and behind.commits == []

    # a tag made on a side branch that was merged: it is the merge's second parent
    service_repo.git("checkout", "--quiet", "-b", "side", "100")
    service_repo.commit("bug 2: on the side")
    service_repo.tag("101")
    service_repo.git("checkout", "--quiet", "main")
    service_repo.git("merge", "--quiet", "--no-ff", "-X", "theirs", "-m", "Merge side", "side")
    merged = _history(service_repo.path, "101", "main")
    assert merged.since_is_ancestor
    assert [c.summary for c in merged.commits] == ["bug 1: after the tag"]

    # a branch that left main before the tag never contains it
    service_repo.git("checkout", "--quiet", "-b", "old", "100~1")
    service_repo.commit("bug 3: branched off before 100")
    apart = _history(service_repo.path, "100", "old")
    assert not apart.since_is_ancestor
    assert [c.summary for c in apart.commits] == ["bug 3: branched off before 100"]


def test_history_of_thousands_of_non_ascii_commits_is_read_whole(service_repo):
    """Git's output arrives in pieces (a pipe holds 64 KiB to 1 MiB); characters of several
    bytes cut between two pieces must come out whole."""
    base = service_repo.commit("base")
    service_repo.many_commits(3000, message="bug {n}: Zoë fixed ☃ and 漢字 in change {n}")
    history = _history(service_repo.path, base, "HEAD")
    assert len(history.commits) == 3000
    assert history.commits[0].summary == "bug 1: Zoë fixed ☃ and 漢字 in change 1"
    assert history.commits[-1].bugs == [3000]
    assert all("\ufffd" not in c.summary for c in history.commits)
    assert [c.bugs[0] for c in history.commits] == list(range(1, 3001))


def test_a_failing_log_is_reported_with_gits_reason(service_repo):
    service_repo.commit("base")
    repo = open_repo(service_repo.path)
    pending = start_history(repo, "0" * 40, repo.rev_parse("HEAD"))
    reason = r"`git log` failed in .*: Invalid revision range 0{40}\.\."
    with pytest.raises(UserError, match=reason):
        pending.result()


@pytest.mark.timeout(60)
def test_long_runs_of_separators_do_not_stall_the_bug_pattern():
    """Regression: "bug 1" followed by 26 ", " took a minute (each more doubled it): the
    separator pattern could match the same spaces in several ways and backtracked."""
    assert find_bugs("Fix bug 1" + ", " * 200 + "and more") == [1]
    assert find_bugs("bug 1" + " and" * 200 + " x") == [1]
    assert find_bugs("bug 1" + " +" * 200 + " x") == [1]
    assert find_bugs("bugs 1" + ", 2" * 100 + " & 300") == sorted({1, 2, 300})


def test_summary_ends_at_a_bare_carriage_return(service_repo):
    """Regression: a message "title\\rbody" kept the \\r and the body in the change line."""
    base = service_repo.commit("base")
    (service_repo.path / "changes.txt").write_text("cr\n")
    service_repo.git("add", "changes.txt")
    service_repo.git(
        "commit", "--quiet", "--cleanup=verbatim", "-m", "Fix bug 42 in the collector\rbody two"
    )
    (commit,) = commits_between(open_repo(service_repo.path), base, "HEAD")
    assert commit.summary == "Fix bug 42 in the collector"
    assert commit.bugs == [42]


def test_a_message_of_megabytes_is_read_whole(service_repo, tmp_path):
    """git writes a huge message in many pieces; they are joined once, not on each piece."""
    base = service_repo.commit("base")
    message = tmp_path / "message.txt"
    message.write_text("bug 7: a huge message\n\n" + ("x" * 99 + "\n") * 60_000 + "Fixes bug 8.")
    (service_repo.path / "changes.txt").write_text("huge\n")
    service_repo.git("add", "changes.txt")
    service_repo.git("commit", "--quiet", "-F", str(message))  # 6 MB: too long for -m
    (commit,) = commits_between(open_repo(service_repo.path), base, "HEAD")
    assert commit.summary == "bug 7: a huge message"
    assert commit.bugs == [7, 8]


def test_a_git_stopped_by_a_signal_says_so(service_repo):
    service_repo.commit("base")
    error = open_repo(service_repo.path)._failed(("log",), "", -9)
    assert "`git log` failed" in str(error) and "stopped by signal 9" in str(error)


def test_git_variables_pointing_elsewhere_are_ignored(service_repo, tmp_path, monkeypatch):
    """Inside a git hook GIT_DIR (and GIT_INDEX_FILE ...) name the hook's repository; the
    tasks must still read the checkout they were given."""
    base = service_repo.commit("base")
    service_repo.commit("bug 3: in the service")
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "--quiet", str(other)], check=True)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    repo = open_repo(service_repo.path)
    assert repo.path == service_repo.path
    assert [c.summary for c in commits_between(repo, base, "HEAD")] == ["bug 3: in the service"]
