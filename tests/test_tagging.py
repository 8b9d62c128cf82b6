"""The `git show` comment builder and the tag message, on real tags."""

from __future__ import annotations

import pytest

from lib.tagging import (
    MAX_COMMENT_LENGTH,
    build_show_comment,
    comment_marker,
    cut_before_diff,
    has_show_comment,
    local_tag,
    normalize_message,
    show_tag,
)

SHOW = (
    "tag 101\nTagger: Deployer <deployer@example.com>\n\nTagging 101 for deploy to prod\n\n"
    "abc1234: fix (Ana)\n\ncommit 0123\nAuthor: Ana\n\n    fix\n\n"
    "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
)


def test_cut_before_first_diff():
    text = cut_before_diff(SHOW)
    assert "diff --git" not in text and "+b" not in text
    assert text.endswith("    fix\n")


def test_cut_before_combined_diff_of_a_merge():
    assert "diff --cc" not in cut_before_diff("commit 1\nMerge: a b\n\ndiff --cc x\n+y\n")


def test_comment_is_a_markdown_code_block_with_a_stable_marker():
    text, cut = build_show_comment("101", "f" * 40, SHOW)
    assert not cut
    first, _, rest = text.partition("\n")
    assert comment_marker("f" * 40) in first
    assert "\n```text\ntag 101\n" in text
    assert text.rstrip().endswith("```")
    assert has_show_comment([{"text": "other"}, {"text": text}], "f" * 40)
    assert not has_show_comment([{"text": text}], "e" * 40)


def test_fence_is_longer_than_any_backtick_run_in_the_output():
    text, _ = build_show_comment("101", "a" * 40, "commit 1\n\n    use ```code``` and ````x````\n")
    assert "`````text\n" in text


@pytest.mark.parametrize("size", [MAX_COMMENT_LENGTH - 200, MAX_COMMENT_LENGTH + 10, 400_000])
def test_long_output_is_cut_to_the_limit_with_a_note(size):
    line = "    " + "x" * 75 + "\n"
    body = "tag 101\n\n" + line * (size // len(line))
    text, cut = build_show_comment("101", "b" * 40, body)
    assert len(text) <= MAX_COMMENT_LENGTH
    if cut:
        assert "Cut to fit Bugzilla's 65,535-character comment limit" in text
        assert "git show 101" in text.splitlines()[-1]
        assert text.count("```") == 2
    else:
        assert size < MAX_COMMENT_LENGTH


def test_one_enormous_line_still_fits():
    text, cut = build_show_comment("101", "c" * 40, "x" * 100_000)
    assert cut and len(text) <= MAX_COMMENT_LENGTH


def test_normalize_message_matches_git_cleanup():
    assert normalize_message("\nA  \n\n\nB\n\n") == "A\n\nB\n"


def test_local_tag_reads_message_and_signature(deploy_repo, monkeypatch):
    monkeypatch.setenv("GNUPGHOME", deploy_repo.env["GNUPGHOME"])
    from lib.gitrepo import open_repo

    deploy_repo.git("tag", "-s", "-m", "Tagging 101 for deploy to prod\n\nline", "101")
    deploy_repo.git("tag", "-a", "-m", "unsigned", "102")
    repo = open_repo(deploy_repo.path)
    signed = local_tag(repo, "101")
    assert signed.annotated and signed.signed
    assert signed.message == "Tagging 101 for deploy to prod\n\nline\n"
    assert signed.commit_sha == deploy_repo.head()
    unsigned = local_tag(repo, "102")
    assert unsigned.annotated and not unsigned.signed
    light = local_tag(repo, "100")
    assert not light.annotated and light.object_sha == light.commit_sha
    assert local_tag(repo, "103") is None
    shown = show_tag(repo, "101")
    assert shown.startswith("tag 101\n") and "BEGIN PGP SIGNATURE" in shown
