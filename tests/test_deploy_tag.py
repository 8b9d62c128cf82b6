"""deploy.tag end to end: the real `invoke` binary, real git with a bare remote, real GPG / SSH
signing, python-bugzilla against the fake Bugzilla. Outcomes are counted on the remote (tags, and
pushes through a post-receive hook) and on the server (comments, write requests)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy_fixtures import SUMMARY, Deploy
from tests.fake_bugzilla import RELENG
from tests.gitrepos import git, git_env

# -- the whole job, and a rerun that changes nothing --


def test_tag_push_and_comment_then_rerun_changes_nothing(deploy):
    repo = deploy.repo
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    deploy.assert_complete()
    assert "next: invoke deploy.watch 101" in result.stdout
    # The API key went in a header only: never in a URL, never in the output.
    key = deploy.bz.key_for(RELENG)
    assert key not in result.stdout + result.stderr
    assert deploy.bz.requests() and not any(e.key_in_url for e in deploy.bz.requests())
    assert {e.auth for e in deploy.bz.writes()} == {"header"}

    # The tag: annotated, signed, on the head, with the templated message.
    assert repo.git("cat-file", "-t", "refs/tags/101").strip() == "tag"
    assert repo.git("rev-parse", "101^{commit}").strip() == repo.head("main")
    message = repo.git("tag", "-l", "--format=%(contents:body)", "101")
    subject = repo.git("tag", "-l", "--format=%(contents:subject)", "101").strip()
    assert subject == "Tagging 101 for deploy to prod"
    lines = [line for line in message.splitlines() if line.strip()]
    commits = repo.git("log", "--reverse", "--format=%h: %s (%an)", "--abbrev=7", "100..main")
    assert lines[:3] == commits.splitlines()
    assert "(Ana Müller)" in lines[0]
    assert lines[-1] == f"Deploy bug: {deploy.bz.base}/show_bug.cgi?id={deploy.bug}"

    # The comment: git show, cut before the diff, a Markdown code block naming the tag object.
    (comment,) = deploy.show_comments()
    object_sha = deploy.local_tag()
    assert f"(tag object {object_sha})" in comment.splitlines()[0]
    assert "```text\ntag 101\n" in comment and "BEGIN PGP SIGNATURE" in comment
    assert "diff --git" not in comment
    assert deploy.bz.comments(deploy.bug)[-1]["is_markdown"] is True

    # Only refs/tags/101 was pushed (the unpushed local tag 7 stays local).
    writes = deploy.writes()
    repo.git("tag", "7", "HEAD~1")
    again = deploy.run("deploy.tag", "101", "--yes")
    assert again.returncode == 0, again.stderr
    assert "is complete" in again.stdout
    deploy.assert_complete()
    assert deploy.writes() == writes
    assert "7" not in repo.remote_tags()


def test_stdin_not_a_terminal_needs_yes(deploy):
    result = deploy.run("deploy.tag", "101")
    deploy.assert_nothing_changed(result)
    assert "--yes" in result.stderr


def _git_logger(directory: Path, log: Path) -> dict[str, str]:
    """A `git` first on PATH that appends its argv to `log` (NUL-separated, one record per run),
    then runs the real git. Git's own child processes bypass it (git puts its exec path first)."""
    real = shutil.which("git")
    directory.mkdir()
    wrapper = directory / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'{{ for a in "$@"; do printf "%s\\0" "$a"; done; printf "\\036\\0"; }} >> {log}\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}


def _logged_commands(log: Path) -> list[list[str]]:
    commands, current = [], []
    for field in log.read_text().split("\0")[:-1]:
        if field == "\x1e":
            commands.append(current)
            current = []
        else:
            current.append(field)
    return commands


DRY_LINE = re.compile(r"^dry-run: (runs|would run): git ", re.MULTILINE)


def _printed_commands(stderr: str) -> list[tuple[str, list[str]]]:
    """The `dry-run: runs: git ...` / `dry-run: would run: git ...` lines as (kind, argv); a
    quoted argument (a tag message) may span lines."""
    printed = []
    for match in DRY_LINE.finditer(stderr):
        quote, end = "", match.end()
        while end < len(stderr) and (quote or stderr[end] != "\n"):
            char = stderr[end]
            if quote and char == quote:
                quote = ""
            elif not quote and char in "'\"":
                quote = char
            end += 1
        printed.append((match.group(1), shlex.split(stderr[match.end() : end])))
    return printed


def test_dry_run_prints_every_command_of_a_real_run_and_changes_nothing(deploy, tmp_path):
    """The git commands a dry run prints are exactly those it runs (`runs:`) plus those a real
    run makes (`would run:`); a real run afterwards runs the same commands, in the same order."""
    dry_log, real_log = tmp_path / "dry.log", tmp_path / "real.log"
    dry = deploy.run("--dry", "deploy.tag", "101", extra=_git_logger(tmp_path / "w1", dry_log))
    assert dry.returncode == 0, dry.stderr
    err = dry.stderr
    deploy.assert_nothing_changed(subprocess.CompletedProcess([], 1))
    assert deploy.bz.key_for(RELENG) not in dry.stdout + err
    assert f"/rest/bug/{deploy.bug}" in err and "tag 101" in err  # the comment it would post
    assert "dry-run: nothing was changed" in dry.stdout
    # Every request the fake Bugzilla received is printed; none of them writes.
    received = deploy.bz.requests()
    assert received and {e.method for e in received} == {"GET"}
    assert err.count("dry-run: runs: GET ") == len(received)
    assert all(e.path in err for e in received)
    printed = _printed_commands(err)
    ran = _logged_commands(dry_log)
    # What the dry run ran is what it printed as `runs:`, command for command.
    assert [argv for kind, argv in printed if kind == "runs"] == ran
    # What it did not run, because it changes something or needs the new tag:
    would = [argv[:2] for kind, argv in printed if kind == "would run"]
    assert would == [
        ["tag", "-s"],
        ["tag", "-v"],
        ["rev-parse", "--verify"],
        ["cat-file", "-t"],
        ["rev-parse", "--verify"],
        ["cat-file", "tag"],
        ["push", "--porcelain"],
        ["ls-remote", "--tags"],
        ["-c", "core.pager=cat"],
    ]

    real = deploy.run("deploy.tag", "101", "--yes", extra=_git_logger(tmp_path / "w2", real_log))
    assert real.returncode == 0, real.stderr
    deploy.assert_complete()
    assert "dry-run: " not in real.stdout + real.stderr
    tag_object = deploy.local_tag()

    def normal(argv: list[str]) -> list[str]:
        # Objects made by the run itself: the tag object, the throwaway signing-check commit.
        argv = [a.replace(tag_object, "<tag object of 101>") for a in argv]
        if argv[:1] == ["verify-commit"]:
            argv[1] = "<signing check commit>"
        return argv

    # The dry run's preview of `git show 101` (the tag does not exist yet) is its only extra.
    preview = [
        ["var", "GIT_COMMITTER_IDENT"],
        ["-c", "core.pager=cat", "show", "--no-color", "--no-patch", deploy.repo.head("main")],
    ]
    expected = [normal(argv) for kind, argv in printed if argv not in preview]
    assert [normal(argv) for argv in _logged_commands(real_log)] == expected
    assert len(expected) > 20


def test_dry_run_flag_of_the_task_is_the_global_dry(deploy):
    result = deploy.run("deploy.tag", "101", "--dry-run")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    fetch = "git fetch --tags origin +refs/heads/main:refs/remotes/origin/main"
    assert f"dry-run: runs: {fetch}\n" in err
    assert "dry-run: runs: git commit-tree -S" in err
    assert "dry-run: would run: git tag -s -F - 101 " in err  # (the message goes on stdin)
    assert "Tagging 101 for deploy to prod" in err
    assert "dry-run: would run: git tag -v 101" in err
    assert "dry-run: would run: git push --porcelain origin refs/tags/101:refs/tags/101" in err
    assert f"/rest/bug/{deploy.bug}" in err and "tag 101" in err
    assert deploy.bz.key_for(RELENG) not in result.stdout + err
    deploy.assert_nothing_changed(subprocess.CompletedProcess([], 1))


def test_ssh_signed_tag(deploy, ssh_signing_key):
    deploy.repo.use_ssh(ssh_signing_key)
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    deploy.assert_complete()
    assert "BEGIN SSH SIGNATURE" in deploy.show_comments()[0]


def test_date_tags(deploy):
    today = datetime.date.today().strftime("%Y.%m.%d")
    deploy.repo.tag(today, "HEAD~1", push=True)
    tag = f"{today}-2"
    bug = deploy.bz.add_bug(summary=SUMMARY.format(tag), product="Socorro", component="Infra")
    result = deploy.run("deploy.tag", tag, "--yes", extra={"INVOKE_DEPLOY_TAG_SCHEME": "date"})
    assert result.returncode == 0, result.stderr
    assert deploy.remote_tag(tag) == deploy.local_tag(tag) is not None
    assert len(deploy.show_comments(bug)) == 1


def test_explicit_bug_and_head(deploy):
    head = deploy.repo.head("main~1")
    result = deploy.run("deploy.tag", "101", "--yes", "--bug", str(deploy.bug), "--head", head)
    assert result.returncode == 0, result.stderr
    assert deploy.repo.git("rev-parse", "101^{commit}").strip() == head
    deploy.assert_complete()


# -- failures at each step, then a rerun that converges --


def test_push_rejected_then_rerun_converges(deploy, tmp_path):
    block = tmp_path / "block"
    block.write_text("")
    deploy.repo.install_remote_hook(
        "pre-receive", f'if [ -e {block} ]; then echo "tags are frozen" >&2; exit 1; fi\n'
    )
    failed = deploy.run("deploy.tag", "101", "--yes")
    assert failed.returncode != 0
    assert "pushing refs/tags/101" in failed.stderr and "rerun deploy.tag 101" in failed.stderr
    assert "tags are frozen" in failed.stderr
    assert "created the signed tag 101" in failed.stdout
    assert deploy.local_tag() and deploy.remote_tag() is None and deploy.show_comments() == []

    block.unlink()
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    assert "done: tag 101 exists, signed and verified" in result.stderr
    deploy.assert_complete()


def test_bugzilla_500_on_the_comment_then_rerun_converges(deploy):
    for method in ("POST", "PUT"):
        deploy.bz.add_fault(f"/rest/bug/{deploy.bug}*", method=method, status=500, count=None)
    failed = deploy.run("deploy.tag", "101", "--yes")
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert "created the signed tag 101" in failed.stdout and "pushed refs/tags/101" in failed.stdout
    assert "rerun `invoke deploy.tag 101` to post the comment" in failed.stderr
    assert deploy.remote_tag() == deploy.local_tag() is not None
    assert deploy.show_comments() == []

    deploy.bz.faults.clear()
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    deploy.assert_complete()


def test_killed_after_the_tag_is_made_then_rerun_converges(deploy):
    # git runs reference-transaction when the tag ref is committed: kill deploy.tag right there.
    deploy.repo.install_local_hook(
        "reference-transaction",
        f'[ "$1" = committed ] || exit 0\n'
        f"grep -q ' refs/tags/101$' || exit 0\n"
        f'rm -f "$0"\nkill -9 "$(cat {deploy.pid_file})"\n',
    )
    killed = deploy.run_killable("deploy.tag", "101", "--yes")
    assert killed.returncode == -9
    assert deploy.local_tag() and deploy.remote_tag() is None and deploy.pushes() == 0

    # Without an API key the resume stops before the push, naming the step that needs the key.
    no_key = deploy.run("deploy.tag", "101", "--yes", extra={"BUGZILLA_API_KEY": ""})
    assert no_key.returncode != 0
    assert no_key.stderr.strip().splitlines()[-1] == (
        "error: no Bugzilla API key: set BUGZILLA_API_KEY (or python-bugzilla's bugzillarc); the "
        f"remaining step of posting `git show 101` on bug {deploy.bug} needs it"
    )
    assert deploy.remote_tag() is None and deploy.pushes() == 0 and deploy.writes() == 0

    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    deploy.assert_complete()


def test_killed_after_the_push_then_rerun_converges(deploy):
    deploy.repo.install_remote_hook(
        "post-update", f'rm -f "$0"\nkill -9 "$(cat {deploy.pid_file})"\n'
    )
    killed = deploy.run_killable("deploy.tag", "101", "--yes")
    assert killed.returncode == -9
    for _ in range(50):  # the push itself finishes after deploy.tag is gone
        if deploy.remote_tag():
            break
        time.sleep(0.1)
    assert deploy.remote_tag() == deploy.local_tag() is not None
    assert deploy.show_comments() == []

    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    assert "done: origin has tag 101" in result.stderr
    deploy.assert_complete()


def test_tag_pushed_from_another_machine_is_resumed(deploy, tmp_path):
    """The remote has exactly the tag this deploy would make (e.g. an earlier run elsewhere)."""
    first = deploy.run("deploy.tag", "101", "--yes")
    assert first.returncode == 0, first.stderr
    # A second checkout of the same remote, without the local tag.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--no-tags", str(deploy.repo.remote_path), str(other))
    git(other, "config", "user.email", "deployer@example.com", env=git_env())
    git(other, "config", "user.signingkey", deploy.repo.git("config", "user.signingkey").strip())
    result = deploy.run("deploy.tag", "101", "--yes", "--repo", str(other))
    assert result.returncode == 0, result.stderr
    assert "is complete" in result.stdout
    deploy.assert_complete()


# -- refusals: each before any change, with a clear message --


def _behind(deploy: Deploy, tmp_path: Path) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(deploy.repo.remote_path), str(other))
    (other / "new.txt").write_text("x")
    git(other, "add", "new.txt")
    git(other, "commit", "-q", "-m", "someone else's change")
    git(other, "push", "-q", "origin", "main")


REFUSALS = {
    "dirty tree": (lambda d, t: (d.repo.path / "scratch.txt").write_text("x"), "not clean"),
    "behind": (_behind, "behind"),
    "ahead": (lambda d, t: d.repo.commit("local only"), "ahead"),
    "diverged": (lambda d, t: (_behind(d, t), d.repo.commit("local only")), "diverged"),
    "wrong branch": (lambda d, t: d.repo.git("checkout", "-q", "-b", "feature"), "not on main"),
    "tag on another commit": (
        lambda d, t: d.repo.git("tag", "-s", "-m", "x", "101", "HEAD~1"),
        "already exists on",
    ),
    "lightweight tag": (
        lambda d, t: d.repo.git("tag", "101"),
        "tag 101 already exists as a lightweight tag;",
    ),
    "unsigned tag": (
        lambda d, t: d.repo.git("tag", "-a", "-m", "x", "101"),
        "already exists as an unsigned annotated tag;",
    ),
    "remote has a different tag": (
        lambda d, t: d.repo.remote_git("tag", "101", d.repo.head("main~2")),
        "has a different tag 101",
    ),
    "bug closed": (
        lambda d, t: d.bz.act_as(RELENG).update(d.bug, status="RESOLVED", resolution="FIXED"),
        "RESOLVED FIXED",
    ),
    "no bug": (lambda d, t: d.bz.bugs[d.bug].update(summary="something else"), "no deploy bug"),
    "Bugzilla answers 500": (
        lambda d, t: d.bz.add_fault("/rest/*", method="GET", status=500, count=None),
        "500",
    ),
    "remote unreachable": (
        lambda d, t: d.repo.git("remote", "set-url", "origin", str(t / "gone.git")),
        "could not ask remote 'origin'",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal_matrix(deploy, tmp_path, case):
    prepare, expected = REFUSALS[case]
    prepare(deploy, tmp_path)
    local_before = deploy.local_tag()
    remote_before = deploy.remote_tag()
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode != 0, result.stdout
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # (the fetch of the preflight mirrors a remote's tag locally, changing nothing else)
    assert deploy.local_tag() == (local_before or remote_before)
    assert deploy.remote_tag() == remote_before
    assert deploy.pushes() == 0 and deploy.writes() == 0 and deploy.show_comments() == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (("deploy.tag", "105", "--yes"), "105 is not the next deploy tag"),
        (("deploy.tag", "99", "--yes"), "99 is an earlier deploy tag, not the next one"),
        (("deploy.tag", "100", "--yes"), "tag 100 already exists on"),
        (("deploy.tag", "--help"), "must not start with '-'"),
        (("deploy.tag", "-1", "--yes"), "must not start with '-'"),
        (("deploy.tag", "v101", "--yes"), "not a deploy tag of the configured scheme"),
        (("deploy.tag", "101", "--yes", "--head", "nope"), "not a commit"),
    ],
)
def test_bad_arguments_are_refused(deploy, args, expected):
    result = deploy.run(*args)
    assert expected in result.stderr, result.stderr
    deploy.assert_nothing_changed(result)


def test_head_not_on_main_is_refused(deploy):
    deploy.repo.git("checkout", "-q", "-b", "feature")
    side = deploy.repo.commit("side work")
    deploy.repo.git("checkout", "-q", "main")
    result = deploy.run("deploy.tag", "101", "--yes", "--head", side)
    assert "is not on main" in result.stderr
    deploy.assert_nothing_changed(result)


def test_bug_summary_of_another_tag_is_refused(deploy):
    other = deploy.bz.add_bug(summary=SUMMARY.format("100"), product="Socorro", component="Infra")
    result = deploy.run("deploy.tag", "101", "--yes", "--bug", str(other))
    assert "'socorro deploy: 100', not 'socorro deploy: 101'" in result.stderr
    deploy.assert_nothing_changed(result)


def test_no_signing_key_is_refused(deploy, empty_gpg_home):
    result = deploy.run("deploy.tag", "101", "--yes", extra={"GNUPGHOME": str(empty_gpg_home.home)})
    assert "no usable GPG secret key" in result.stderr
    deploy.assert_nothing_changed(result)


def test_no_api_key_is_refused(deploy):
    result = deploy.run("deploy.tag", "101", "--yes", extra={"BUGZILLA_API_KEY": ""})
    assert "no Bugzilla API key" in result.stderr
    assert (
        f"posting `git show 101` on bug {deploy.bug} needs it; nothing was tagged" in result.stderr
    )
    deploy.assert_nothing_changed(result)


def test_nothing_to_deploy_is_refused(deploy):
    deploy.repo.git("reset", "-q", "--hard", "100")
    deploy.repo.git("push", "-q", "-f", "origin", "main")
    result = deploy.run("deploy.tag", "101", "--yes")
    assert "nothing to deploy" in result.stderr
    deploy.assert_nothing_changed(result)


def test_push_not_allowed_is_refused_before_tagging(deploy, tmp_path):
    # Fetching works, pushing does not (like a read-only push URL or missing credentials).
    deploy.repo.git("remote", "set-url", "--push", "origin", str(tmp_path / "no-such-remote.git"))
    result = deploy.run("deploy.tag", "101", "--yes")
    assert "`git push --dry-run`" in result.stderr and "would fail" in result.stderr
    deploy.assert_nothing_changed(result)
    # A dry run needs no push rights: it warns and shows the rest.
    dry = deploy.run("--dry", "deploy.tag", "101")
    assert dry.returncode == 0, dry.stderr
    assert "WARNING, a real run would stop here: pushing refs/tags/101" in dry.stderr
    assert "would run: git push --porcelain origin refs/tags/101:refs/tags/101" in dry.stderr
    deploy.assert_nothing_changed(subprocess.CompletedProcess([], 1))


def test_huge_git_show_is_cut_to_the_comment_limit(deploy):
    body = "\n".join(f"detail line {i}: " + "x" * 70 for i in range(1200))  # ~100,000 characters
    deploy.repo.commit("bug 300000: a change with a very long message", body=body)
    deploy.repo.push("main")
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    assert "cut to fit" in result.stderr
    (comment,) = deploy.show_comments()
    assert len(comment) <= 65_535
    assert "Cut to fit Bugzilla's 65,535-character comment limit" in comment
    deploy.assert_complete()


def test_upstream_bugzilla(deploy, fake_bugzilla_upstream):
    upstream = fake_bugzilla_upstream
    bug = upstream.add_bug(summary=SUMMARY.format("101"), product="Socorro", component="Infra")
    on_upstream = dataclasses.replace(
        deploy,
        bz=upstream,
        bug=bug,
        env={
            **deploy.env,
            "INVOKE_BUGZILLA_URL": upstream.url,
            "BUGZILLA_API_KEY": upstream.key_for(RELENG),
        },
    )
    result = on_upstream.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    on_upstream.assert_complete()
    assert on_upstream.run("deploy.tag", "101", "--yes").returncode == 0
    assert len(on_upstream.show_comments()) == 1


@pytest.mark.parametrize("answer", ["n", "y"])
def test_confirmation_on_a_terminal(deploy, answer):
    import pty

    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            deploy.command("deploy.tag", "101"),
            cwd=deploy.repo.path,
            env=deploy.full_env(),
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(primary, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    if answer == "n":
        assert process.returncode != 0 and "aborted" in err
        deploy.assert_nothing_changed(subprocess.CompletedProcess([], 1))
    else:
        assert process.returncode == 0, err
        deploy.assert_complete()


def test_signing_that_fails_after_the_preflight(deploy, tmp_path):
    """gpg works for the preflight's test signature, then fails for the tag (agent timed out)."""
    count = tmp_path / "signatures"
    wrapper = tmp_path / "gpg-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -bsau "*)\n'
        f"  echo x >> {count}\n"
        f'  if [ "$(wc -l < {count})" -ge 2 ]; then\n'
        "    cat >/dev/null\n"
        '    echo "gpg: signing failed: Inappropriate ioctl for device" >&2; exit 2\n'
        "  fi;;\nesac\n"
        'exec gpg "$@"\n'
    )
    wrapper.chmod(0o755)
    deploy.repo.git("config", "gpg.program", str(wrapper))
    result = deploy.run("deploy.tag", "101", "--yes")
    assert "creating the signed tag 101 failed" in result.stderr and "GPG_TTY" in result.stderr
    deploy.assert_nothing_changed(result)


def test_dry_run_needs_no_api_key(deploy):
    result = deploy.run("--dry", "deploy.tag", "101", extra={"BUGZILLA_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert f"would send: PUT {deploy.bz.url.rstrip('/')}/bug/{deploy.bug}" in result.stderr
    deploy.assert_nothing_changed(subprocess.CompletedProcess([], 1))


def test_the_releng_tasks_checkout_itself_is_refused(deploy):
    from tests.deploy_fixtures import PROJECT_ROOT

    before = git(PROJECT_ROOT, "tag", "-l").split()
    for task in ("deploy.tag", "deploy.finish"):
        result = deploy.run(
            task, "101", "--yes" if task == "deploy.tag" else "--force", "--repo", str(PROJECT_ROOT)
        )
        assert result.returncode != 0
        assert "releng-tasks checkout itself" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    deploy.assert_nothing_changed(result)
    assert git(PROJECT_ROOT, "tag", "-l").split() == before


def test_thousands_of_commits_tag_message_goes_on_stdin(deploy):
    # 2,000 commits: a tag message over 128 KiB, too long for one process argument.
    deploy.repo.many_commits(2000, "bug 400000: a change with a fairly long summary line {n}")
    deploy.repo.push("main")
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    deploy.assert_complete()
    message = deploy.repo.git("tag", "-l", "--format=%(contents)", "101")
    assert len(message) > 128 * 1024
    assert "a fairly long summary line 2000" in message
    (comment,) = deploy.show_comments()
    assert len(comment) <= 65_535


def test_a_second_run_on_the_same_repository_is_refused_while_one_runs(deploy):
    import fcntl

    lock = deploy.repo.path / ".git" / "releng-deploy.lock"
    with open(lock, "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("deploy.tag, process 4242\n")
        held.flush()
        for task, extra in (("deploy.tag", "--yes"), ("deploy.finish", "--force")):
            result = deploy.run(task, "101", extra)
            assert result.returncode != 0
            assert "another deploy task is running on this repository" in result.stderr
            assert "deploy.tag, process 4242" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        deploy.assert_nothing_changed(result)
    # Once the other run ends, the lock is free again.
    result = deploy.run("deploy.tag", "101", "--yes")
    assert result.returncode == 0, result.stderr
    deploy.assert_complete()


def test_two_concurrent_runs_post_the_comment_once(deploy):
    import subprocess as sp

    # Slow the comment down so both runs overlap.
    deploy.bz.add_fault(f"/rest/bug/{deploy.bug}", method="PUT", status=None, delay=1.0, count=None)
    runs = [
        sp.Popen(
            deploy.command("deploy.tag", "101", "--yes"),
            cwd=deploy.repo.path,
            env=deploy.full_env(),
            stdin=sp.DEVNULL,
            stdout=sp.PIPE,
            stderr=sp.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    codes = sorted(run.returncode for run in runs)
    deploy.assert_complete()
    assert len(deploy.show_comments()) == 1
    # Either the second one was refused by the lock, or it started after the first ended.
    if codes != [0, 0]:
        assert codes[0] == 0
        assert any("another deploy task is running" in err for _, err in outcomes)


def test_timeout_on_the_comment_that_lands_late_finishes_with_one_comment(deploy):
    deploy.bz.add_fault(f"/rest/bug/{deploy.bug}", method="PUT", status=None, delay=2.0, count=1)
    result = deploy.run("deploy.tag", "101", "--yes", extra={"INVOKE_BUGZILLA_TIMEOUT": "0.5"})
    assert result.returncode == 0, result.stderr
    assert "Bugzilla answered late; the comment is there" in result.stdout + result.stderr
    assert deploy.remote_tag() == deploy.local_tag() is not None
    shows = [c for c in deploy.bz.comments(deploy.bug) if "(tag object " in c["text"]]
    assert len(shows) == 1
    again = deploy.run("deploy.tag", "101", "--yes")
    assert again.returncode == 0, again.stderr
    shows = [c for c in deploy.bz.comments(deploy.bug) if "(tag object " in c["text"]]
    assert len(shows) == 1


def test_timeout_on_the_comment_that_never_lands_says_to_wait_before_rerunning(deploy):
    # The server answers 500 after the client gave up: the comment was not applied.
    deploy.bz.add_fault(f"/rest/bug/{deploy.bug}", method="PUT", status=500, delay=2.0, count=1)
    failed = deploy.run("deploy.tag", "101", "--yes", extra={"INVOKE_BUGZILLA_TIMEOUT": "0.5"})
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert "comment may still be posted; wait until Bugzilla has answered" in failed.stderr
    assert "rerunning is safe" not in failed.stderr
    assert deploy.remote_tag() == deploy.local_tag() is not None
    assert not [c for c in deploy.bz.comments(deploy.bug) if "(tag object " in c["text"]]
    again = deploy.run("deploy.tag", "101", "--yes")
    assert again.returncode == 0, again.stderr
    shows = [c for c in deploy.bz.comments(deploy.bug) if "(tag object " in c["text"]]
    assert len(shows) == 1
