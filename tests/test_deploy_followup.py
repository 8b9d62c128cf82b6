"""deploy.watch, deploy.status and deploy.finish end to end: the real `invoke` binary against a
real repository, the fake Bugzilla and fake Dockerflow prod and stage hosts."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy_fixtures import Deploy, TaggedTemplate, replay_tag

OLD = "b" * 40


@pytest.fixture
def tagged(deploy: Deploy, _tagged_template: TaggedTemplate) -> Deploy:
    """deploy.tag 101 done (its real results, made once per session, replayed here); prod still
    serves 100, stage serves main."""
    replay_tag(deploy, _tagged_template)
    deploy.assert_complete()
    assert deploy.writes() == 1
    deploy.prod.serve(deploy.repo.head("100"), "100")
    deploy.stage.serve(deploy.repo.head("main"), "main")
    return deploy


def commit_of(deploy: Deploy, tag: str = "101") -> str:
    return deploy.repo.git("rev-parse", f"{tag}^{{commit}}").strip()


# -- deploy.watch --


def test_watch_until_prod_serves_the_tag_retrying_errors(tagged):
    tagged.prod.fail_next(2, path="/__version__", drop=True)
    tagged.prod.fail_next(1, path="/__version__", status=503)
    tagged.prod.serve_after(5, commit_of(tagged), "101")
    result = tagged.run("deploy.watch", "101", "--interval", "0.05", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert f"prod serves 101 ({commit_of(tagged)[:7]})" in result.stdout
    assert "next: invoke deploy.finish 101" in result.stdout
    assert "heartbeat: ok" in result.stderr
    assert "HTTP 503" in result.stderr and "(100)" in result.stderr  # progress lines
    assert len(tagged.prod.requests("/__version__")) >= 6
    assert tagged.prod.requests("/__heartbeat__")


def test_watch_times_out_with_what_is_served(tagged):
    tagged.prod.state.healthy = False
    result = tagged.run("deploy.watch", "101", "--interval", "0.05", "--timeout", "0.3")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: timed out after 0.3s: prod")
    assert f"serves {tagged.repo.head('100')[:7]} (100), not 101" in last
    assert "HTTP 500" in last  # the heartbeat


def test_watch_stage_accepts_a_later_commit_that_contains_the_tag(tagged):
    later = tagged.repo.commit("after the tag")
    tagged.repo.push("main")
    tagged.stage.serve(later, "main")
    result = tagged.run("deploy.watch", "101", "--env", "stage", "--interval", "0.05")
    assert result.returncode == 0, result.stderr
    assert "stage serves 101" in result.stdout and f"({later[:7]} contains it)" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--env", "dev"), "--env must be prod or stage"),
        (("--timeout", "soon"), "--timeout must be a number (got 'soon')"),
        (("--interval", "0"), "--interval must be more than 0"),
    ],
)
def test_watch_bad_options(tagged, args, message):
    result = tagged.run("deploy.watch", "101", *args)
    assert result.returncode != 0 and message in result.stderr
    assert tagged.prod.requests() == []


def test_watch_unknown_tag(deploy):
    result = deploy.run("deploy.watch", "101", "--timeout", "1")
    assert result.returncode != 0 and "run deploy.tag 101" in result.stderr


# -- deploy.status --


def steps(result) -> dict[str, bool | None]:
    report = json.loads(result.stdout)
    return {step["step"]: step["done"] for step in report["steps"]}


def test_status_follows_the_real_systems_step_by_step(deploy):
    before = deploy.run("deploy.status", "101", "--json")
    assert before.returncode == 0, before.stderr
    assert steps(before) == {
        "bug_filed": True,
        "tag_created": False,
        "tag_verified": False,
        "pushed": False,
        "show_posted": False,
        "stage_serves": False,
        "prod_serves": False,
        "bug_resolved": False,
    }
    assert deploy.run("deploy.tag", "101", "--yes").returncode == 0
    deploy.stage.serve(commit_of(deploy), "main")
    middle = json.loads(deploy.run("deploy.status", "101", "--json").stdout)
    assert middle["bug"] == deploy.bug and middle["commit"] == commit_of(deploy)
    assert {s["step"]: s["done"] for s in middle["steps"]} == {
        "bug_filed": True,
        "tag_created": True,
        "tag_verified": True,
        "pushed": True,
        "show_posted": True,
        "stage_serves": True,
        "prod_serves": False,
        "bug_resolved": False,
    }
    assert middle["complete"] is False

    deploy.prod.serve(commit_of(deploy), "101")
    assert deploy.run("deploy.finish", "101").returncode == 0
    after = json.loads(deploy.run("deploy.status", "101", "--json").stdout)
    assert all(s["done"] for s in after["steps"]) and after["complete"] is True
    # status never writes anything anywhere.
    writes = deploy.writes()
    deploy.run("deploy.status", "101")
    assert deploy.writes() == writes


def test_status_and_watch_under_dry_print_their_requests(tagged):
    tagged.prod.serve(commit_of(tagged), "101")
    status = tagged.run("--dry", "deploy.status", "101", "--json")
    assert status.returncode == 0, status.stderr
    for host in (tagged.stage, tagged.prod):
        assert f"dry-run: runs: GET {host.url.rstrip('/')}/__version__\n" in status.stderr
    assert "dry-run: runs: git ls-remote --tags origin refs/tags/101\n" in status.stderr
    assert json.loads(status.stdout)["tag"] == "101"
    watch = tagged.run("--dry", "deploy.watch", "101", "--interval", "0.05")
    assert watch.returncode == 0, watch.stderr
    base = tagged.prod.url.rstrip("/")
    assert watch.stderr.count(f"dry-run: runs: GET {base}/__heartbeat__\n") == 2
    assert f"dry-run: runs: GET {base}/__version__\n" in watch.stderr


def test_status_table_and_unreachable_hosts(tagged):
    tagged.prod.fail_next(1, path="/__version__", status=502)
    result = tagged.run("deploy.status", "101")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "deploy 101" in out and "tag pushed" in out and "prod serves it" in out
    assert "unknown" in out and "HTTP 502" in out
    assert "Traceback" not in result.stderr


def test_status_of_an_unknown_tag_and_a_flag_value(deploy):
    assert deploy.run("deploy.status", "--json").returncode != 0
    result = deploy.run("deploy.status", "102", "--json")
    assert result.returncode == 0
    done = steps(result)
    assert done["bug_filed"] is False and done["tag_created"] is False


# -- deploy.finish --


def test_finish_refuses_until_prod_serves_the_tag(tagged):
    result = tagged.run("deploy.finish", "101")
    assert result.returncode != 0
    assert "prod" in result.stderr and "deploy.watch 101" in result.stderr
    assert tagged.bz.bug(tagged.bug)["status"] == "NEW"
    assert tagged.writes() == 1  # only the comment of deploy.tag


def test_finish_comments_and_resolves_fixed_once(tagged):
    tagged.prod.serve(commit_of(tagged), "101")
    writes = tagged.writes()
    no_key = tagged.run("deploy.finish", "101", extra={"BUGZILLA_API_KEY": ""})
    assert no_key.returncode != 0
    assert f"the closing comment and RESOLVED FIXED on bug {tagged.bug}, needs it" in no_key.stderr
    assert tagged.writes() == writes
    result = tagged.run(
        "deploy.finish", "101", "--note", "migrations ran", "--note", "no errors in Sentry"
    )
    assert result.returncode == 0, result.stderr
    bug = tagged.bz.bug(tagged.bug)
    assert (bug["status"], bug["resolution"]) == ("RESOLVED", "FIXED")
    closing = tagged.bz.comments(tagged.bug)[-1]["text"]
    assert closing.startswith(f"Deployed 101 (`{commit_of(tagged)[:7]}`) to prod")
    assert "* migrations ran" in closing and "* no errors in Sentry" in closing
    assert "What went out:" in closing and "(Ana Müller)" in closing
    assert "\n\n\n" not in closing
    (put,) = [e for e in tagged.bz.writes()[writes:]]
    assert put.method == "PUT" and put.body["status"] == "RESOLVED"

    # A rerun changes nothing, so it needs no API key.
    again = tagged.run("deploy.finish", "101", "--note", "x", extra={"BUGZILLA_API_KEY": ""})
    assert again.returncode == 0, again.stderr
    assert "already RESOLVED FIXED; nothing to do" in again.stdout
    assert tagged.writes() == writes + 1


def test_finish_with_force_says_so(tagged):
    result = tagged.run("deploy.finish", "101", "--force")
    assert result.returncode == 0, result.stderr
    assert "closing anyway (--force)" in result.stderr
    closing = tagged.bz.comments(tagged.bug)[-1]["text"]
    assert "with --force" in closing and "(100)" in closing
    assert tagged.bz.bug(tagged.bug)["resolution"] == "FIXED"


def test_finish_when_prod_serves_a_later_deploy(tagged):
    later = tagged.repo.commit("after the tag")
    tagged.repo.push("main")
    tagged.prod.serve(later, "102")
    assert tagged.run("deploy.finish", "101").returncode == 0
    assert tagged.bz.bug(tagged.bug)["resolution"] == "FIXED"


@pytest.mark.parametrize("dry", [("--dry",), ()])
def test_finish_dry_run_changes_nothing(tagged, dry):
    tagged.prod.serve(commit_of(tagged), "101")
    writes = tagged.writes()
    args = (*dry, "deploy.finish", "101") if dry else ("deploy.finish", "101", "--dry-run")
    result = tagged.run(*args)
    assert result.returncode == 0, result.stderr
    assert f"would send: PUT {tagged.bz.url.rstrip('/')}/bug/{tagged.bug}" in result.stderr
    assert '"resolution": "FIXED"' in result.stderr
    # Its reads are printed too: git commands and the Dockerflow request.
    assert "dry-run: runs: git rev-parse --verify --quiet refs/tags/101\n" in result.stderr
    assert f"dry-run: runs: GET {tagged.prod.url.rstrip('/')}/__version__\n" in result.stderr
    assert len(tagged.prod.requests("/__version__")) == 1
    assert tagged.bz.key_for("releng@mozilla.com") not in result.stderr + result.stdout
    assert tagged.writes() == writes and tagged.bz.bug(tagged.bug)["status"] == "NEW"


def test_finish_refuses_a_bug_closed_otherwise(tagged):
    tagged.prod.serve(commit_of(tagged), "101")
    tagged.bz.act_as("releng@mozilla.com").update(
        tagged.bug, status="RESOLVED", resolution="WONTFIX"
    )
    writes = tagged.writes()
    result = tagged.run("deploy.finish", "101")
    assert result.returncode != 0 and "RESOLVED WONTFIX, not FIXED" in result.stderr
    assert tagged.writes() == writes


def test_status_from_a_checkout_without_the_tag(tagged, tmp_path):
    """Another machine: the tag is only on the remote; status still finds the comment."""
    from tests.gitrepos import git

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--no-tags", str(tagged.repo.remote_path), str(other))
    result = tagged.run("deploy.status", "101", "--json", "--repo", str(other))
    assert result.returncode == 0, result.stderr
    done = steps(result)
    assert done["tag_created"] is True and done["tag_verified"] is None
    assert done["pushed"] is True and done["show_posted"] is True
    assert json.loads(result.stdout)["commit"] == commit_of(tagged)


def test_status_when_bugzilla_is_down(tagged):
    tagged.bz.add_fault("/rest/*", status=500, count=None)
    result = tagged.run("deploy.status", "101", "--json")
    assert result.returncode == 0, result.stderr
    done = steps(result)
    assert done["bug_filed"] is None and done["show_posted"] is None
    assert done["bug_resolved"] is None and done["pushed"] is True


def test_the_whole_deploy_from_prepare_to_finish(deploy):
    """prepare --file-bug, tag, watch, finish, status: the how-to's steps, end to end."""
    deploy.bz.bugs[deploy.bug]["summary"] = "an older bug"  # let prepare file the deploy bug
    filed = deploy.run("deploy.prepare", "--file-bug", "--json")
    assert filed.returncode == 0, filed.stderr
    plan = json.loads(filed.stdout)
    assert plan["next_tag"] == "101"
    bug = plan["bug_id"]

    tagged = deploy.run("deploy.tag", "101", "--yes")
    assert tagged.returncode == 0, tagged.stderr
    assert len(deploy.show_comments(bug)) == 1

    deploy.prod.serve(deploy.repo.head("100"), "100")
    deploy.prod.serve_after(2, commit_of(deploy), "101")
    watched = deploy.run("deploy.watch", "101", "--interval", "0.05", "--timeout", "30")
    assert watched.returncode == 0, watched.stderr

    finished = deploy.run("deploy.finish", "101", "--note", "all good")
    assert finished.returncode == 0, finished.stderr
    assert (deploy.bz.bug(bug)["status"], deploy.bz.bug(bug)["resolution"]) == ("RESOLVED", "FIXED")

    deploy.stage.serve(commit_of(deploy), "main")
    report = json.loads(deploy.run("deploy.status", "101", "--json").stdout)
    assert report["complete"] is True and report["bug"] == bug


def test_finish_of_a_large_deploy_cuts_the_change_list_to_fit(deploy):
    deploy.repo.many_commits(1000, "bug 500000: a change of a large deploy, number {n}")
    deploy.repo.push("main")
    tagged = deploy.run("deploy.tag", "101", "--yes")
    assert tagged.returncode == 0, tagged.stderr
    deploy.prod.serve(commit_of(deploy), "101")
    result = deploy.run("deploy.finish", "101", "--note", "went fine")
    assert result.returncode == 0, result.stderr
    assert "of 1003 changes to fit" in result.stderr
    bug = deploy.bz.bug(deploy.bug)
    assert (bug["status"], bug["resolution"]) == ("RESOLVED", "FIXED")
    closing = deploy.bz.comments(deploy.bug)[-1]["text"]
    assert 60_000 < len(closing) <= 65_535
    more = re.search(r"^\* \.\.\. and (\d+) more; see (\S+)$", closing, re.MULTILINE)
    assert more, closing[-500:]
    assert more.group(2) == "https://github.com/mozilla-services/socorro/releases/tag/101"
    listed = [line for line in closing.splitlines() if "a change of a large deploy" in line]
    assert len(listed) + int(more.group(1)) == 1000
    assert closing.rstrip().endswith("* went fine")


@pytest.mark.parametrize("resolution", ["WONTFIX", "DUPLICATE"])
@pytest.mark.parametrize("explicit", [False, True])
def test_finish_refuses_a_bug_resolved_otherwise_by_number_or_summary(tagged, resolution, explicit):
    tagged.prod.serve(commit_of(tagged), "101")
    fields = {"dupe_of": 1} if resolution == "DUPLICATE" else {}
    tagged.bz.act_as("releng@mozilla.com").update(
        tagged.bug, status="RESOLVED", resolution=resolution, **fields
    )
    writes = tagged.writes()
    args = ("--bug", str(tagged.bug)) if explicit else ()
    result = tagged.run("deploy.finish", "101", *args)
    assert result.returncode != 0
    assert f"is RESOLVED {resolution}, not FIXED" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert tagged.writes() == writes
    assert tagged.bz.bug(tagged.bug)["resolution"] == resolution


@pytest.mark.parametrize("url", ["notaurl", "ftp://x", "http://", "https:///path"])
def test_watch_refuses_a_host_url_that_is_not_http(tagged, url):
    result = tagged.run(
        "deploy.watch", "101", "--timeout", "30", extra={"INVOKE_DEPLOY_PROD_URL": url}
    )
    assert result.returncode != 0
    assert "deploy.prod_url must be an http:// or https:// URL with a host" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"INVOKE_DEPLOY_WATCH_TIMEOUT": "abc"}, "deploy.watch_timeout must be a number"),
        ({"INVOKE_DEPLOY_WATCH_INTERVAL": "-1"}, "deploy.watch_interval must be more than 0"),
    ],
)
def test_watch_bad_config_values_name_the_config_key(tagged, extra, message):
    result = tagged.run("deploy.watch", "101", extra=extra)
    assert result.returncode != 0 and message in result.stderr
    assert "--timeout" not in result.stderr and "--interval" not in result.stderr
    assert tagged.prod.requests() == []


def test_watch_interval_longer_than_the_timeout_is_clamped(tagged):
    result = tagged.run("deploy.watch", "101", "--interval", "30", "--timeout", "0.3")
    assert result.returncode == 2
    assert "every 0.3s for up to 0.3s" in result.stderr


def test_watch_live_but_heartbeat_failing_does_not_suggest_finishing(tagged):
    tagged.prod.serve(commit_of(tagged), "101")
    tagged.prod.state.healthy = False
    result = tagged.run("deploy.watch", "101", "--interval", "0.05", "--timeout", "5")
    assert result.returncode == 3
    assert "prod serves 101" in result.stderr and "but its heartbeat fails" in result.stderr
    assert "HTTP 500" in result.stderr
    assert "deploy.finish" not in result.stdout + result.stderr


def test_watch_interrupted_says_so_and_exits_130(tagged):
    import signal
    import subprocess
    import time

    process = subprocess.Popen(
        tagged.command("deploy.watch", "101", "--interval", "0.05", "--timeout", "60"),
        env=tagged.full_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(tagged.prod.requests("/__version__")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "deploy.watch 101 was interrupted" in err
    assert "Traceback" not in err


def test_status_prints_no_dry_run_lines_on_a_normal_run(tagged):
    result = tagged.run("deploy.status", "101", "--json")
    assert result.returncode == 0, result.stderr
    assert "dry-run" not in result.stdout + result.stderr
    assert steps(result)["bug_filed"] is True


def test_an_overridden_summary_template_carries_through_tag_and_finish(deploy, tmp_path):
    """Regression: deploy.tag/status/finish looked for the built-in `<project> deploy: NNN`, so a
    bug filed with an overridden summary template was 'not the deploy bug of 101'."""
    templates = tmp_path / "templates"
    templates.mkdir()
    summary = "Deploy {{ project|upper }} {{ next_tag }}"
    (templates / "deploy_bug_summary.txt.j2").write_text(summary)
    deploy.extra["INVOKE_TEMPLATES_DIR"] = str(templates)
    filed = deploy.run("deploy.prepare", "--file-bug", "--json")
    assert filed.returncode == 0, filed.stderr
    plan = json.loads(filed.stdout)
    bug = plan["bug_id"]
    assert bug != deploy.bug and deploy.bz.bug(bug)["summary"] == "Deploy SOCORRO 101"

    tagged = deploy.run("deploy.tag", "101", "--yes")
    assert tagged.returncode == 0, tagged.stderr
    assert len(deploy.show_comments(bug)) == 1 and deploy.show_comments(deploy.bug) == []
    deploy.prod.serve(commit_of(deploy), "101")
    finished = deploy.run("deploy.finish", "101")
    assert finished.returncode == 0, finished.stderr
    assert deploy.bz.bug(bug)["resolution"] == "FIXED"


def test_a_summary_template_using_more_than_project_and_tag_files_nothing(deploy, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "deploy_bug_summary.txt.j2").write_text("{{ project }} {{ next_tag }} {{ head }}")
    deploy.extra["INVOKE_TEMPLATES_DIR"] = str(templates)
    bugs = len(deploy.bz.bugs)
    result = deploy.run("deploy.prepare", "--file-bug")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: template {templates / 'deploy_bug_summary.txt.j2'}, line 1: 'head' is undefined"
    ]
    assert len(deploy.bz.bugs) == bugs


def test_a_broken_needinfo_template_files_nothing(deploy, tmp_path):
    """Regression: the needinfo template was rendered only after the bug was filed."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "deploy_needinfo.md.j2").write_text("hi {% if %}\n")
    deploy.extra["INVOKE_TEMPLATES_DIR"] = str(templates)
    deploy.bz.bugs[deploy.bug]["summary"] = "an older bug"  # prepare would file a new bug
    bugs = len(deploy.bz.bugs)
    result = deploy.run("deploy.prepare", "--needinfo")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: template {templates / 'deploy_needinfo.md.j2'}, line 1:")
    assert len(deploy.bz.bugs) == bugs and deploy.bz.writes() == []
