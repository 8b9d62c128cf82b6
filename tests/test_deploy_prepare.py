"""`invoke deploy.prepare` end to end, on real repositories (no Bugzilla involved here)."""

from __future__ import annotations

import datetime
import json
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.gitrepos import ServiceRepo, git


def prepare_json(invoke, repo: ServiceRepo, *args: str, extra_env=None) -> dict:
    result = invoke(
        "deploy.prepare", "--repo", str(repo.path), "--json", *args, extra_env=extra_env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fail(invoke, repo_path, *args: str, extra_env=None) -> str:
    """Run prepare expecting a refusal; return its one-line error."""
    result = invoke("deploy.prepare", "--repo", str(repo_path), *args, extra_env=extra_env)
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def fail_with_template(invoke, repo: ServiceRepo, tmp_path, name: str, text: str) -> str:
    """Run prepare --offline with a templates.dir holding `name` = `text`; its one-line error."""
    custom = tmp_path / "templates"
    custom.mkdir(exist_ok=True)
    (custom / name).write_text(text)
    return fail(invoke, repo.path, "--offline", extra_env={"INVOKE_TEMPLATES_DIR": str(custom)})


@pytest.fixture
def tagged_repo(service_repo: ServiceRepo) -> ServiceRepo:
    """Tags 98, 99, 100, then three new commits (two of them merged from a branch) on main."""
    for tag in ("98", "99"):
        service_repo.commit(f"work before {tag}")
        service_repo.tag(tag)
    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.commit(
        "bug 1900001: fix the crash list", author=("Zoë Ångström", "zoe@example.com")
    )
    service_repo.merge_branch("feature", ["bug-1900002: add a field", "Update docs"])
    service_repo.push()
    return service_repo


def test_integer_tags_previous_next_and_exactly_the_new_commits(invoke, tagged_repo):
    plan = prepare_json(invoke, tagged_repo, "--offline")
    assert plan["previous_tag"] == "100"
    assert plan["next_tag"] == "101"
    assert plan["head"] == tagged_repo.head()
    assert [c["summary"] for c in plan["commits"]] == [
        "bug 1900001: fix the crash list",
        "bug-1900002: add a field",
        "Update docs",
    ]
    assert plan["commits"][0]["author"] == "Zoë Ångström"
    assert plan["commits"][0]["bugs"] == [1900001]
    assert plan["bugs"] == [1900001, 1900002]
    assert plan["compare_url"] == (
        f"https://github.com/mozilla-services/socorro/compare/100...{plan['head']}"
    )
    assert plan["summary"] == "socorro deploy: 101"
    description = plan["description"]
    for commit in plan["commits"]:
        assert f"`{commit['sha'][:7]}`: {commit['summary']} ({commit['author']})" in description
    assert "https://bugzilla.mozilla.org/show_bug.cgi?id=1900001" in description
    assert plan["compare_url"] in description
    assert "invoke deploy.tag 101" in description


def test_online_run_fetches_and_agrees_with_remote(invoke, tagged_repo):
    plan = prepare_json(invoke, tagged_repo)
    assert plan["next_tag"] == "101"


def test_date_tags_give_today_then_suffix(invoke, service_repo):
    today = datetime.date.today().strftime("%Y.%m.%d")
    env = {"INVOKE_DEPLOY_TAG_SCHEME": "date", "INVOKE_DEPLOY_TAG_PREFIX": "v"}
    service_repo.tag("v2020.01.01")
    service_repo.commit("bug 5: something")
    plan = prepare_json(invoke, service_repo, "--offline", extra_env=env)
    assert (plan["previous_tag"], plan["next_tag"]) == ("v2020.01.01", f"v{today}")
    service_repo.tag(f"v{today}")
    service_repo.commit("bug 6: more")
    plan = prepare_json(invoke, service_repo, "--offline", extra_env=env)
    assert (plan["previous_tag"], plan["next_tag"]) == (f"v{today}", f"v{today}-2")
    assert [c["bugs"] for c in plan["commits"]] == [[6]]


def test_first_deploy_lists_every_commit(invoke, service_repo):
    service_repo.commit("second")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert plan["previous_tag"] is None
    assert plan["next_tag"] == "1"
    assert [c["summary"] for c in plan["commits"]] == ["Initial commit", "second"]
    assert "/commits/" in plan["compare_url"]


def test_thousands_of_commits_fit_the_bugzilla_limit(invoke, service_repo):
    service_repo.tag("7")
    service_repo.many_commits(3000, message="bug {n}: change number {n} with a long enough summary")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert len(plan["commits"]) == 3000
    assert plan["bugs"][:3] == [1, 2, 3] and len(plan["bugs"]) == 3000
    assert len(plan["description"]) <= 65535
    assert "more (too many for one Bugzilla comment" in plan["description"]


def test_nothing_to_deploy_says_so_and_exits_0(invoke, service_repo):
    service_repo.tag("5")
    result = invoke("deploy.prepare", "--repo", str(service_repo.path), "--offline")
    assert result.returncode == 0
    assert "nothing to deploy" in result.stderr
    assert result.stdout == ""


def test_since_and_head_override_the_range(invoke, tagged_repo):
    first = tagged_repo.git("log", "--format=%H", "-n", "1", "--grep", "fix the crash list")
    plan = prepare_json(invoke, tagged_repo, "--offline", "--since", "99", "--head", first)
    assert plan["previous_tag"] == "99"
    assert plan["next_tag"] == "101"  # never reuses an existing tag number
    assert plan["head"] == first
    assert [c["summary"] for c in plan["commits"]] == [
        "work before 100",
        "bug 1900001: fix the crash list",
    ]


def test_without_api_key_prints_text_and_prefilled_link(invoke, tagged_repo):
    result = invoke("deploy.prepare", "--repo", str(tagged_repo.path), "--offline")
    assert result.returncode == 0, result.stderr
    assert "socorro deploy: 101" in result.stdout
    link = result.stdout.split("file it here (prefilled): ", 1)[1].strip()
    query = parse_qs(urlsplit(link).query)
    assert link.startswith("https://bugzilla.mozilla.org/enter_bug.cgi?")
    assert query["product"] == ["Socorro"] and query["component"] == ["Infra"]
    assert query["short_desc"] == ["socorro deploy: 101"]
    assert query["bug_type"] == ["task"] and query["priority"] == ["P2"]
    assert "bug 1900001: fix the crash list" in query["comment"][0]


def test_file_bug_without_api_key_prints_and_exits_0(invoke, tagged_repo):
    result = invoke("deploy.prepare", "--repo", str(tagged_repo.path), "--offline", "--file-bug")
    assert result.returncode == 0, result.stderr
    assert "no Bugzilla API key" in result.stderr
    assert "enter_bug.cgi?" in result.stdout


# --- refusals: one line, non-zero exit, nothing on stdout ---------------------------------


def test_not_a_git_repository(invoke, tmp_path):
    (tmp_path / "plain").mkdir()
    assert "is not a git repository; point --repo" in fail(invoke, tmp_path / "plain")


def test_a_bare_repository_is_named_as_such(invoke, tmp_path):
    """Regression: a bare repository was reported as "not a git repository"."""
    subprocess.run(["git", "init", "--quiet", "--bare", str(tmp_path / "bare.git")], check=True)
    assert "is a bare repository (it has no working tree)" in fail(invoke, tmp_path / "bare.git")


def test_repository_path_missing(invoke, tmp_path):
    assert "does not exist" in fail(invoke, tmp_path / "nowhere")


def test_main_branch_missing(invoke, service_repo):
    line = fail(invoke, service_repo.path, extra_env={"INVOKE_DEPLOY_MAIN_BRANCH": "trunk"})
    assert "branch 'trunk' does not exist" in line


def test_dirty_tree_lists_what_is_dirty(invoke, service_repo):
    (service_repo.path / "changes.txt").write_text("edited\n")
    (service_repo.path / "new-file.py").write_text("x\n")
    line = fail(invoke, service_repo.path, "--offline")
    assert "not clean" in line and "changes.txt" in line and "new-file.py" in line


def test_ahead_of_remote(invoke, service_repo):
    service_repo.commit("local only")
    line = fail(invoke, service_repo.path)
    assert "1 commit(s) ahead of origin/main" in line and "git push origin main" in line


def push_from_elsewhere(repo: ServiceRepo, tmp_path) -> None:
    """Someone else pushes a commit to the remote's main."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", str(repo.remote_path), str(other))
    (other / "f.txt").write_text("x")
    git(other, "add", "f.txt")
    git(other, "commit", "--quiet", "-m", "pushed by someone else")
    git(other, "push", "--quiet", "origin", "main")


def test_behind_remote(invoke, service_repo, tmp_path):
    push_from_elsewhere(service_repo, tmp_path)
    line = fail(invoke, service_repo.path)
    assert "behind origin/main" in line and "git pull --ff-only origin main" in line


def test_diverged_from_remote(invoke, service_repo, tmp_path):
    push_from_elsewhere(service_repo, tmp_path)
    service_repo.commit("ours")
    assert "have diverged" in fail(invoke, service_repo.path)


def test_fetch_failure_suggests_offline(invoke, service_repo):
    service_repo.git("remote", "set-url", "origin", str(service_repo.path.parent / "gone.git"))
    line = fail(invoke, service_repo.path)
    assert "could not fetch" in line and "--offline" in line


def test_since_tag_that_does_not_exist(invoke, tagged_repo):
    assert "--since tag '42' does not exist" in fail(
        invoke, tagged_repo.path, "--offline", "--since", "42"
    )


def test_head_not_descendant_of_previous_tag(invoke, tagged_repo):
    old = tagged_repo.git("rev-list", "-n", "1", "98")
    line = fail(invoke, tagged_repo.path, "--offline", "--head", old)
    assert "is not a descendant of the previous deploy tag 100" in line


def test_unknown_head(invoke, tagged_repo):
    assert "is not a commit" in fail(invoke, tagged_repo.path, "--offline", "--head", "nope")


def test_bad_priority(invoke, tagged_repo):
    assert "--priority must be P1 or P2" in fail(invoke, tagged_repo.path, "--priority", "P9")


def test_template_syntax_error_names_file_and_line(invoke, tagged_repo, tmp_path):
    line = fail_with_template(
        invoke, tagged_repo, tmp_path, "deploy_bug_description.md.j2", "line one\n{% if %}\n"
    )
    assert f"{tmp_path / 'templates' / 'deploy_bug_description.md.j2'}, line 2" in line


def test_user_template_overrides_the_default(invoke, tagged_repo, tmp_path):
    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "deploy_bug_summary.txt.j2").write_text("[deploy] {{ project }} {{ next_tag }}\n")
    plan = prepare_json(
        invoke, tagged_repo, "--offline", extra_env={"INVOKE_TEMPLATES_DIR": str(custom)}
    )
    assert plan["summary"] == "[deploy] socorro 101"


def test_bad_tag_scheme_in_config(invoke, tagged_repo):
    line = fail(
        invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_DEPLOY_TAG_SCHEME": "semver"}
    )
    assert "deploy.tag_scheme must be one of integer, date" in line


# --- regressions found by trying the tool as a new user ------------------------------------


def test_unpushed_deploy_tag_higher_than_the_remotes_is_refused(invoke, tagged_repo):
    tagged_repo.tag("101", "HEAD~1")  # made here, never pushed: it would hide commits
    line = fail(invoke, tagged_repo.path)
    assert "deploy tag 101 exists here but not on 'origin'" in line


def test_remote_tags_decide_the_previous_tag_online(invoke, tagged_repo):
    tagged_repo.git("push", "--quiet", "origin", ":refs/tags/100")  # 100 deleted upstream
    tagged_repo.git("tag", "-d", "100")
    plan = prepare_json(invoke, tagged_repo)
    assert plan["previous_tag"] == "99" and plan["next_tag"] == "100"


def test_local_tag_moved_away_from_the_remote_is_named(invoke, tagged_repo):
    tagged_repo.git("tag", "-f", "100", "HEAD~1")
    line = fail(invoke, tagged_repo.path)
    assert "tag 100 on remote 'origin' names another object than the local tag 100" in line


def test_signed_commits_with_log_show_signature_keep_clean_shas(invoke, service_repo, tmp_path):
    key = tmp_path / "signing_key"
    git(tmp_path, "version")  # git present
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t@example.com", "-f", str(key)],
        check=True,
    )
    service_repo.tag("1")
    service_repo.git("config", "gpg.format", "ssh")
    service_repo.git("config", "user.signingkey", str(key))
    service_repo.git("config", "log.showSignature", "true")
    (service_repo.path / "signed.txt").write_text("x\n")
    service_repo.git("add", "signed.txt")
    service_repo.git("commit", "--quiet", "-S", "-m", "bug 42: signed change")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert [c["sha"] for c in plan["commits"]] == [service_repo.head()]
    assert plan["commits"][0]["summary"] == "bug 42: signed change"


def test_commit_message_with_control_bytes(invoke, service_repo):
    service_repo.tag("1")
    service_repo.commit("bug 7: odd\x1ebytes\x1f in a message")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert plan["commits"][0]["sha"] == service_repo.head()
    assert plan["bugs"] == [7]


def test_shallow_clone_is_refused(invoke, tagged_repo, tmp_path):
    shallow = tmp_path / "shallow"
    git(
        tmp_path,
        "clone",
        "--quiet",
        "--depth",
        "2",
        f"file://{tagged_repo.remote_path}",
        str(shallow),
    )
    line = fail(invoke, shallow, "--offline")
    assert "shallow clone" in line and "git fetch --unshallow" in line


def test_long_description_leaves_the_link_usable(invoke, service_repo):
    service_repo.tag("1")
    service_repo.many_commits(200, message="bug {n}: a change with a reasonably long summary line")
    result = invoke("deploy.prepare", "--repo", str(service_repo.path), "--offline")
    assert result.returncode == 0, result.stderr
    link = result.stdout.split("file it here (prefilled): ", 1)[1].strip()
    assert len(link) <= 8000
    assert "paste" in parse_qs(urlsplit(link).query)["comment"][0]
    # the note comes after the description and the link it speaks of
    assert result.stdout.index("bug 200: a change") < result.stdout.index("too long for a link")
    assert result.stdout.index("file it here") < result.stdout.index("too long for a link")
    assert "too long for a link" not in result.stderr

    as_json = invoke("deploy.prepare", "--repo", str(service_repo.path), "--offline", "--json")
    plan = json.loads(as_json.stdout)
    assert plan["enter_bug_url_omits_description"] is True
    assert "too long for a link" in as_json.stderr and "plan's description" in as_json.stderr


def test_own_checkout_is_never_filed(invoke, tmp_path):
    from tests.conftest import PROJECT_ROOT

    result = invoke(
        "deploy.prepare",
        "--repo",
        str(PROJECT_ROOT),
        "--offline",
        "--file-bug",
        extra_env={
            "BUGZILLA_API_KEY": "some-key",
            "INVOKE_BUGZILLA_URL": "http://127.0.0.1:9/rest/",
        },
    )
    assert result.returncode == 1
    assert "is the releng-tasks checkout itself" in result.stderr
    assert "some-key" not in result.stderr


def test_summary_template_must_render_one_line(invoke, tagged_repo, tmp_path):
    line = fail_with_template(
        invoke,
        tagged_repo,
        tmp_path,
        "deploy_bug_summary.txt.j2",
        "{{ project }}\n{{ next_tag }}\n",
    )
    assert "must render one line" in line


def test_prefix_starting_with_a_dash_is_refused(invoke, tagged_repo):
    line = fail(
        invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_DEPLOY_TAG_PREFIX": "--v"}
    )
    assert "deploy.tag_prefix" in line


@pytest.mark.parametrize("value", ["a b/c?d", "../..", "owner/..", "-x/socorro", "a/b/c"])
def test_github_repo_must_be_owner_slash_repo(invoke, tagged_repo, value):
    """Regression (dot segments): `../..` gave the link https://github.com/../../compare/..."""
    line = fail(
        invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_DEPLOY_GITHUB_REPO": value}
    )
    assert "OWNER/REPO" in line


def test_github_repo_of_an_enterprise_managed_owner(invoke, tagged_repo):
    result = invoke(
        "deploy.prepare",
        "--repo",
        str(tagged_repo.path),
        "--offline",
        "--json",
        extra_env={"INVOKE_DEPLOY_GITHUB_REPO": "octo_acme/socorro.web"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["compare_url"].startswith(
        "https://github.com/octo_acme/socorro.web/compare/100..."
    )


def test_dirty_non_ascii_path_is_named_readably(invoke, service_repo):
    (service_repo.path / "ünïcode file.txt").write_text("x")
    assert "ünïcode file.txt" in fail(invoke, service_repo.path, "--offline")


def test_repo_given_as_its_git_directory(invoke, tagged_repo):
    result = invoke(
        "deploy.prepare", "--repo", str(tagged_repo.path / ".git"), "--offline", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["next_tag"] == "101"


def test_repository_without_commits(invoke, tmp_path):
    git(tmp_path, "init", "--quiet", "--initial-branch=main", "empty")
    assert "has no commits yet" in fail(invoke, tmp_path / "empty", "--offline")


def test_priority_is_case_insensitive(invoke, tagged_repo):
    result = invoke(
        "deploy.prepare", "--repo", str(tagged_repo.path), "--offline", "--priority", "p1"
    )
    assert result.returncode == 0, result.stderr
    assert "priority=P1" in result.stdout


def test_git_never_sees_the_secrets(invoke, tagged_repo, tmp_path):
    import shutil
    import stat

    real_git = shutil.which("git")
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "git-env.log"
    (shim / "git").write_text(f'#!/bin/sh\nenv >> "{log}"\nexec "{real_git}" "$@"\n')
    (shim / "git").chmod(stat.S_IRWXU)
    import os

    result = invoke(
        "deploy.prepare",
        "--repo",
        str(tagged_repo.path),
        extra_env={
            "PATH": f"{shim}:{os.environ['PATH']}",
            "BUGZILLA_API_KEY": "bz-secret-value",
            "SOCORRO_REPROCESS_API_TOKEN": "crash-secret-value",
        },
    )
    assert result.returncode == 0, result.stderr
    seen = log.read_text()
    assert "GIT_TERMINAL_PROMPT=0" in seen  # the shim really ran for our git calls
    assert "bz-secret-value" not in seen and "crash-secret-value" not in seen


def test_template_errors_name_the_file_and_line(invoke, tagged_repo, tmp_path):
    custom = tmp_path / "templates"
    custom.mkdir()
    summary = custom / "deploy_bug_summary.txt.j2"
    summary.write_text("{{ project }}\n{{ no_such_value }}\n")
    line = fail(
        invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_TEMPLATES_DIR": str(custom)}
    )
    assert f"{summary}, line 2" in line and "no_such_value" in line
    summary.write_bytes(b"\xff\xfe not utf-8")
    line = fail(
        invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_TEMPLATES_DIR": str(custom)}
    )
    assert line == f"error: template {summary} is not UTF-8 text"
    summary.unlink()
    description = custom / "deploy_bug_description.md.j2"
    description.write_text("{{ next_tag }}\n{% include 'nothere.j2' %}\n")
    line = fail(
        invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_TEMPLATES_DIR": str(custom)}
    )
    # Regression: this said the description template itself was not found.
    assert line.startswith(f"error: template {description}, line 2: includes nothere.j2, which")


def test_credentials_in_the_bugzilla_url_never_reach_the_text(invoke, tagged_repo):
    env = {"INVOKE_BUGZILLA_URL": "https://me:s3cret-pw@bz.example/rest/"}
    result = invoke("deploy.prepare", "--repo", str(tagged_repo.path), "--offline", extra_env=env)
    assert result.returncode == 0, result.stderr
    assert "https://bz.example/show_bug.cgi?id=1900001" in result.stdout
    assert "https://bz.example/enter_bug.cgi?" in result.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_annotated_and_nested_tags_give_the_commit_they_name(invoke, service_repo):
    service_repo.commit("work before 100")
    tagged = service_repo.head()
    service_repo.git("tag", "-a", "-m", "deploy 100", "100")
    service_repo.git("-c", "advice.nestedTag=false", "tag", "-a", "-m", "again", "101", "100")
    service_repo.commit("bug 5: after the tags")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert (plan["previous_tag"], plan["previous_sha"], plan["next_tag"]) == ("101", tagged, "102")
    assert [c["summary"] for c in plan["commits"]] == ["bug 5: after the tags"]
    plan = prepare_json(invoke, service_repo, "--offline", "--since", "100")
    assert plan["previous_sha"] == tagged and len(plan["commits"]) == 1


def test_last_deploy_tag_that_names_no_commit_is_refused(invoke, service_repo):
    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.commit("bug 5: after the tag")
    service_repo.git("tag", "101", "HEAD^{tree}")
    line = fail(invoke, service_repo.path, "--offline")
    assert "the last deploy tag 101 does not name a commit" in line and "--since" in line
    assert prepare_json(invoke, service_repo, "--offline", "--since", "100")["commits"]
    assert "--since tag '101' does not name a commit" in fail(
        invoke, service_repo.path, "--offline", "--since", "101"
    )


def test_a_number_too_large_for_a_bug_id_is_no_bug(invoke, service_repo):
    """Regression: JSON writers refuse integers beyond 64 bits; such a number is no bug id."""
    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.commit("bug 123456789012345678901234567890: not a real bug, bug 42 is")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert plan["bugs"] == [42] and plan["commits"][0]["bugs"] == [42]


def test_reader_of_stdout_going_away_ends_quietly(env, service_repo):
    """Regression: `invoke deploy.prepare --json | head -c 100` ended with a BrokenPipeError
    traceback."""
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.many_commits(3000, message="bug {n}: change number {n}")  # > 64 KiB of JSON
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT)]
        + ["deploy.prepare", "--repo", str(service_repo.path), "--offline", "--json"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = process.stdout.read(100)
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert first.startswith(b'{"project":"socorro"')
    assert "Traceback" not in errors and "Broken" not in errors


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_full_disk_on_stdout_is_one_line(env, tagged_repo, unbuffered, as_json):
    """Regression: `invoke deploy.prepare > /dev/full` ended in an OSError traceback."""
    import sys

    from tests.conftest import PROJECT_ROOT

    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "deploy.prepare"]
            + ["--repo", str(tagged_repo.path), "--offline"]
            + (["--json"] if as_json else []),
            env={**env, "PYTHONUNBUFFERED": unbuffered},
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: could not write to standard output: No space left on device"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("deploy.prepare", "--offline"), ("--list",)])
def test_a_closed_stdout_is_an_error_not_lost_output(env, tagged_repo, args):
    """Regression: with stdout closed (`>&-`) the task printed into nothing and exited 0."""
    import shlex
    import sys

    from tests.conftest import PROJECT_ROOT

    command = [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), *args]
    if args[0] == "deploy.prepare":
        command += ["--repo", str(tagged_repo.path)]
    result = subprocess.run(
        ["bash", "-c", f"exec >&-; exec {shlex.join(command)}"],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: could not write to standard output: it is closed"
    )
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_json_reaches_a_slow_reader_whole(env, service_repo, unbuffered):
    """The plan (megabytes of JSON, written as bytes) reaches a slow reader whole, buffered or
    not. Unbuffered, stdout's binary layer is the raw file, whose write may take only part of the
    data (interrupted by a signal, or the reader leaving): test_reader_of_stdout_going_away_...
    checks that the rest is still written (and fails when the reader is gone)."""
    import json
    import subprocess
    import sys
    import time

    from tests.conftest import PROJECT_ROOT

    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.many_commits(3000, message="bug {n}: change number {n}")  # > 64 KiB of JSON
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT)]
        + ["deploy.prepare", "--repo", str(service_repo.path), "--offline", "--json"],
        env={**env, "PYTHONUNBUFFERED": unbuffered},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # let the task fill the pipe and find it full
    out = process.stdout.read()
    assert process.wait(timeout=60) == 0
    plan = json.loads(out)
    assert len(plan["commits"]) == 3000
    assert plan["commits"][-1]["short"] == plan["commits"][-1]["sha"][:7]


@pytest.mark.parametrize("odd", ["x\u2028y", "n\u0085z", "p\u2029q"])
def test_tag_names_with_unicode_line_separators_are_ignored(invoke, service_repo, odd):
    """Regression: a tag named with U+2028 (or U+0085, U+2029) made every run end in a
    traceback, and a fetch brought such a tag back from the remote."""
    service_repo.commit("work before 100")
    service_repo.tag("100")
    service_repo.tag(odd)
    service_repo.commit("bug 5: after the tag")
    plan = prepare_json(invoke, service_repo, "--offline")
    assert (plan["previous_tag"], plan["next_tag"]) == ("100", "101")


def test_dirty_path_with_a_newline_keeps_the_error_on_one_line(invoke, service_repo):
    service_repo.commit("work")
    (service_repo.path / "two\nlines.txt").write_text("x")
    assert "two\\nlines.txt" in fail(invoke, service_repo.path, "--offline")


def test_setting_with_bytes_that_are_not_utf8_is_one_line_error(invoke, tagged_repo):
    """Regression: INVOKE_DEPLOY_PROJECT=$'so\\xffcorro' ended in a UnicodeEncodeError
    traceback while the link was built."""
    line = fail(
        invoke,
        tagged_repo.path,
        "--offline",
        extra_env={"INVOKE_DEPLOY_PROJECT": "so\udcffcorro"},  # the byte 0xff, as Python keeps it
    )
    assert "config value deploy.project holds bytes that are not UTF-8" in line
    assert "INVOKE_DEPLOY_PROJECT" in line


def test_git_children_never_get_a_bugzilla_url_with_a_password(invoke, env, tagged_repo, tmp_path):
    """Regression: INVOKE_BUGZILLA_URL=https://user:password@... reached every git child."""
    import shutil

    from lib.redaction import child_environment

    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    seen = tmp_path / "git-env.txt"
    (wrappers / "git").write_text(f'#!/bin/sh\nenv >> {seen}\nexec {shutil.which("git")} "$@"\n')
    (wrappers / "git").chmod(0o755)
    url = "https://bob:pw-SECRET-4711@bugzilla.example.com/rest/"
    plan = prepare_json(
        invoke,
        tagged_repo,
        "--offline",
        extra_env={"PATH": f"{wrappers}:{env['PATH']}", "INVOKE_BUGZILLA_URL": url},
    )
    assert plan["next_tag"] == "101"
    assert seen.read_text().count("PATH=") >= 2  # git ran, through the wrapper
    assert "pw-SECRET-4711" not in seen.read_text()
    kept = child_environment({"INVOKE_BUGZILLA_URL": "https://bugzilla.example.com/rest/"})
    assert kept == {"INVOKE_BUGZILLA_URL": "https://bugzilla.example.com/rest/"}


def test_tags_of_another_scheme_are_named_before_a_first_deploy(invoke, tagged_repo, service_repo):
    """Regression: a wrong tag scheme or prefix silently planned a first deploy of every commit."""
    result = invoke(
        "deploy.prepare",
        "--repo",
        str(tagged_repo.path),
        "--offline",
        "--json",
        extra_env={"INVOKE_DEPLOY_TAG_SCHEME": "date"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["previous_tag"] is None
    assert result.stderr.strip().splitlines() == [
        "note: none of the repository's 3 tag(s) (99, 98, 100) is a date deploy tag, so this is "
        "planned as a first deploy with every commit; if that is wrong, check deploy.tag_scheme "
        "and deploy.tag_prefix or pass --since"
    ]
    # The right scheme, or a repository with no tag at all: no note.
    assert invoke("deploy.prepare", "--repo", str(tagged_repo.path), "--offline").stderr == ""


def test_a_repository_without_tags_is_a_first_deploy_without_a_note(invoke, service_repo):
    service_repo.commit("bug 1: the very first change")
    result = invoke("deploy.prepare", "--repo", str(service_repo.path), "--offline", "--json")
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout)["previous_tag"] is None


def test_a_deploy_tag_moved_on_the_remote_is_named_with_its_fix(invoke, tagged_repo):
    """Regression: the fetch's 'would clobber existing tag' was reported as a network problem
    with advice to use --offline, which plans from the stale local tag."""
    tagged_repo.git("push", "--quiet", "origin", "main", "--tags")
    moved_to = tagged_repo.head("99")
    tagged_repo.remote_git("tag", "--force", "100", moved_to)
    result = invoke("deploy.prepare", "--repo", str(tagged_repo.path))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: tag 100 on remote 'origin' names another object than the local tag 100"
    )
    assert "git tag -d 100 && git fetch origin tag 100" in line and "network" not in line
    assert tagged_repo.git("rev-parse", "100").strip() != moved_to  # nothing changed here


@pytest.mark.parametrize("url", ["ftp://bugzilla.example.com/rest/", "-x", "None"])
def test_a_bad_bugzilla_url_is_refused_without_filing_too(invoke, tagged_repo, url):
    """Regression: without --file-bug the URL was not checked, and the printed links were
    'None/show_bug.cgi?id=...' or '-x/enter_bug.cgi?...'."""
    result = invoke(
        "deploy.prepare",
        "--repo",
        str(tagged_repo.path),
        "--offline",
        extra_env={"INVOKE_BUGZILLA_URL": url},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: bugzilla.url must be an http(s) URL such as https://bugzilla.mozilla.org/rest/, "
        f"not {url!r}"
    ]


def test_a_main_branch_gone_from_the_remote_is_refused(invoke, tagged_repo):
    """Regression: after the remote's main was renamed, the fetch (which prunes nothing) left the
    stale refs/remotes/origin/main and the comparison passed against it."""
    tagged_repo.git("push", "--quiet", "origin", "main", "--tags")
    assert prepare_json(invoke, tagged_repo)["next_tag"] == "101"
    tagged_repo.remote_git("branch", "-m", "main", "trunk")
    result = invoke("deploy.prepare", "--repo", str(tagged_repo.path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["error: remote 'origin' has no branch 'main'"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://[::1/rest/", "Invalid IPv6 URL"),
        ("https://bz.example:abc/rest/", "Port could not be cast to integer value as 'abc'"),
        ("https://me:pw-4711@bz.example:99999/rest/", "Port out of range 0-65535"),
    ],
)
def test_a_malformed_bugzilla_url_is_one_line(invoke, tagged_repo, url, reason):
    """Regression: an unclosed IPv6 bracket was a ValueError traceback; a bad port was accepted
    for the printed links and failed later as a bare "InvalidURL"."""
    line = fail(invoke, tagged_repo.path, "--offline", extra_env={"INVOKE_BUGZILLA_URL": url})
    assert line.startswith("error: bugzilla.url ") and line.endswith(
        f"is not a valid URL: {reason}"
    )
    assert "pw-4711" not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ next_tag }} {{ 1/0 }}\n", ", line 1: ZeroDivisionError: division by zero"),
        ("{{ next_tag }}\n{{ next_tag + 1 }}\n", ", line 2: TypeError: can only concatenate str"),
        (
            "{% extends 'deploy_bug_description.md.j2' %}\n",
            "includes or extends itself without end",
        ),
    ],
)
def test_a_template_that_fails_while_rendering_is_one_line(
    invoke, tagged_repo, tmp_path, text, expected
):
    """Regression: {{ 1/0 }} was a ZeroDivisionError traceback, a template extending itself a
    RecursionError traceback."""
    line = fail_with_template(invoke, tagged_repo, tmp_path, "deploy_bug_description.md.j2", text)
    assert line.startswith("error: template ") and "deploy_bug_description.md.j2" in line
    assert expected in line


def test_an_override_that_is_not_a_file_is_named(invoke, tagged_repo, tmp_path):
    """Regression: a directory or a dangling link in templates.dir was skipped silently and the
    project's template used instead."""
    custom = tmp_path / "templates"
    custom.mkdir()
    entry = custom / "deploy_bug_summary.txt.j2"
    entry.mkdir()
    env = {"INVOKE_TEMPLATES_DIR": str(custom)}
    line = fail(invoke, tagged_repo.path, "--offline", extra_env=env)
    assert line == f"error: template {entry} is not a file (templates.dir overrides {entry.name})"
    entry.rmdir()
    entry.symlink_to(tmp_path / "gone.j2")
    line = fail(invoke, tagged_repo.path, "--offline", extra_env=env)
    assert line == f"error: template {entry} is not a file (templates.dir overrides {entry.name})"


def test_a_summary_template_without_the_tag_is_refused(invoke, tagged_repo, tmp_path):
    """Regression: a summary without the tag was the same for every deploy, so deploy 102
    reused the bug of deploy 101."""
    line = fail_with_template(
        invoke, tagged_repo, tmp_path, "deploy_bug_summary.txt.j2", "{{ project }} deploy\n"
    )
    assert line.startswith(
        "error: template deploy_bug_summary.txt.j2 must name the tag ({{ next_tag }})"
    )


def test_an_empty_description_is_refused(invoke, tagged_repo, tmp_path):
    line = fail_with_template(
        invoke, tagged_repo, tmp_path, "deploy_bug_description.md.j2", "{# nothing #}\n\n"
    )
    assert line == "error: template deploy_bug_description.md.j2 rendered an empty description"


def test_the_compare_link_encodes_the_previous_tag(invoke, tagged_repo):
    """Regression: a `#` in the --since tag cut the link (`.../compare/a#b...`)."""
    tagged_repo.tag("a#b", "HEAD~1")
    plan = prepare_json(invoke, tagged_repo, "--offline", "--since", "a#b")
    assert plan["compare_url"] == (
        f"https://github.com/mozilla-services/socorro/compare/a%23b...{plan['head']}"
    )


def test_the_other_scheme_note_says_an_integer(invoke, service_repo):
    service_repo.commit("work")
    service_repo.tag("v2026.01.02")
    service_repo.commit("more work")
    result = invoke("deploy.prepare", "--repo", str(service_repo.path), "--offline")
    assert result.returncode == 0, result.stderr
    assert "(v2026.01.02) is an integer deploy tag, so" in result.stderr


@pytest.mark.parametrize("key", ["deploy.stage_url", "deploy.prod_url"])
def test_a_stage_or_prod_url_that_is_no_url_is_refused(invoke, tagged_repo, key):
    """Regression: `deploy.stage_url: not a url` went into the checklist as it was."""
    variable = "INVOKE_" + key.upper().replace(".", "_")
    line = fail(invoke, tagged_repo.path, "--offline", extra_env={variable: "not a url"})
    assert line == f"error: {key} must be an http:// or https:// URL with a host (got 'not a url')"
