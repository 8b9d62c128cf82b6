"""`invoke deploy.prepare --file-bug / --needinfo` on the fake Bugzilla (BMO and upstream 5.0)."""

from __future__ import annotations

import json

import pytest

from tests.fake_bugzilla import RELENG, SEED_USERS, FakeBugzilla
from tests.gitrepos import ServiceRepo

KEY = SEED_USERS[RELENG]
ENGINEER = "engineer@mozilla.com"


def bz_env(server: FakeBugzilla, key: str | None = KEY) -> dict[str, str]:
    env = {"INVOKE_BUGZILLA_URL": server.url}
    if server.mode == "upstream":
        env["INVOKE_BUGZILLA_USER"] = RELENG  # upstream has no /whoami
    if key is not None:
        env["BUGZILLA_API_KEY"] = key
    return env


def run(invoke, repo: ServiceRepo, server: FakeBugzilla, *args: str, key: str | None = KEY):
    return invoke("deploy.prepare", "--repo", str(repo.path), *args, extra_env=bz_env(server, key))


def no_secret_anywhere(server: FakeBugzilla, *outputs: str) -> None:
    for text in outputs:
        assert KEY not in text
    for entry in server.journal:
        assert KEY not in json.dumps(entry.__dict__, default=str)


@pytest.fixture
def deploy_repo(service_repo: ServiceRepo, bugzilla_server: FakeBugzilla) -> ServiceRepo:
    """Tag 100 then two commits naming bugs that exist on the fake server."""
    service_repo.tag("100")
    first = bugzilla_server.add_bug(
        product="Socorro", component="General", summary="crash list", assigned_to=ENGINEER
    )
    second = bugzilla_server.add_bug(
        product="Socorro", component="General", summary="my own work", assigned_to=RELENG
    )
    service_repo.commit(f"bug {first}: fix the crash list")
    service_repo.commit(f"bug-{second}: something the deployer did")
    service_repo.push()
    service_repo.bugs = (first, second)
    if bugzilla_server.mode == "upstream":
        bugzilla_server.priorities += ["P1", "P2", "P3", "P4", "P5"]  # added by the admin
    return service_repo


def test_file_bug_creates_it_with_the_right_fields_then_reuses_it(
    invoke, deploy_repo, bugzilla_server
):
    result = run(invoke, deploy_repo, bugzilla_server, "--file-bug", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    bug = bugzilla_server.bug(plan["bug_id"])
    assert bug["summary"] == "socorro deploy: 101"
    assert (bug["product"], bug["component"], bug["priority"]) == ("Socorro", "Infra", "P2")
    assert bug["assigned_to"] == RELENG
    assert bug["status"] in ("NEW", "CONFIRMED", "UNCONFIRMED")
    if bugzilla_server.mode == "bmo":
        assert bug["type"] == "task"
    else:
        assert "type" not in bug or not bug["type"]
        assert bug["version"] == "unspecified"
    description = bugzilla_server.comments(plan["bug_id"])[0]["text"]
    assert description == plan["description"]
    assert f"bug {deploy_repo.bugs[0]}: fix the crash list" in description
    assert plan["bug_url"].endswith(f"/show_bug.cgi?id={plan['bug_id']}")
    creates = [e for e in bugzilla_server.journal if e.method == "POST" and e.path == "/rest/bug"]
    assert len(creates) == 1

    again = run(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert again.returncode == 0, again.stderr
    assert f"bug {plan['bug_id']} already has the summary" in again.stderr
    assert f"deploy bug (reused): {plan['bug_url']}" in again.stdout
    creates = [e for e in bugzilla_server.journal if e.method == "POST" and e.path == "/rest/bug"]
    assert len(creates) == 1
    no_secret_anywhere(bugzilla_server, result.stdout, result.stderr, again.stdout, again.stderr)


def test_key_goes_by_header_on_bmo_and_by_parameter_on_upstream(
    invoke, deploy_repo, bugzilla_server
):
    result = run(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert result.returncode == 0, result.stderr
    writes = [e for e in bugzilla_server.journal if e.method in ("POST", "PUT")]
    forms = {e.auth for e in writes}
    if bugzilla_server.mode == "bmo":
        assert forms == {"header"}
        assert not any(e.key_in_url for e in bugzilla_server.journal)
    else:
        # Upstream accepts only the parameter; writes carry it in the body, not the URL.
        assert forms == {"body:Bugzilla_api_key"}
        assert not any(e.key_in_url for e in writes)


def test_upstream_without_bugzilla_user_leaves_the_default_assignee(
    invoke, deploy_repo, fake_bugzilla_upstream
):
    fake_bugzilla_upstream.priorities += ["P2"]
    result = invoke(
        "deploy.prepare",
        "--repo",
        str(deploy_repo.path),
        "--file-bug",
        "--json",
        extra_env={"INVOKE_BUGZILLA_URL": fake_bugzilla_upstream.url, "BUGZILLA_API_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    assert "set bugzilla.user or pass --assignee" in result.stderr
    bug = fake_bugzilla_upstream.bug(json.loads(result.stdout)["bug_id"])
    assert bug["assigned_to"] == "nobody@mozilla.org"


def test_priority_and_assignee_options(invoke, deploy_repo, bugzilla_server):
    result = run(
        invoke,
        deploy_repo,
        bugzilla_server,
        "--file-bug",
        "--json",
        "--priority",
        "P1",
        "--assignee",
        ENGINEER,
    )
    assert result.returncode == 0, result.stderr
    bug = bugzilla_server.bug(json.loads(result.stdout)["bug_id"])
    assert (bug["priority"], bug["assigned_to"]) == ("P1", ENGINEER)


def test_needinfo_asks_the_assignees_once_excluding_the_deployer(
    invoke, deploy_repo, bugzilla_server
):
    result = run(invoke, deploy_repo, bugzilla_server, "--needinfo", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["needinfo"] == [ENGINEER]
    assert bugzilla_server.needinfos(plan["bug_id"]) == [ENGINEER]
    comment = bugzilla_server.comments(plan["bug_id"])[-1]["text"]
    assert f"{ENGINEER}: bug {deploy_repo.bugs[0]}" in comment
    assert RELENG not in comment

    again = run(invoke, deploy_repo, bugzilla_server, "--needinfo")
    assert again.returncode == 0, again.stderr
    assert "nobody to needinfo" in again.stderr
    assert bugzilla_server.needinfos(plan["bug_id"]) == [ENGINEER]
    assert len(bugzilla_server.comments(plan["bug_id"])) == 2


def test_second_needinfo_does_not_overwrite_the_first(invoke, deploy_repo, bugzilla_server):
    plan = json.loads(run(invoke, deploy_repo, bugzilla_server, "--needinfo", "--json").stdout)
    other = "dev2@mozilla.com"
    bugzilla_server.add_user(other)
    third = bugzilla_server.add_bug(
        product="Socorro", component="General", summary="more", assigned_to=other
    )
    deploy_repo.git("tag", "-d", "100")  # keep the same next tag: 101
    deploy_repo.tag("100", "HEAD~2")
    deploy_repo.commit(f"bug {third}: another change")
    deploy_repo.push()
    # The summary is the same (101), so the bug is reused and only the new person is asked.
    result = run(invoke, deploy_repo, bugzilla_server, "--needinfo", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["needinfo"] == [other]
    assert sorted(bugzilla_server.needinfos(plan["bug_id"])) == sorted([ENGINEER, other])


# --- refusals: one line, non-zero, nothing filed -------------------------------------------


def refused(invoke, repo, server, *args, key=KEY) -> str:
    result = run(invoke, repo, server, *args, key=key)
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert all(b["summary"] != "socorro deploy: 101" for b in server.bugs.values())
    if key:
        assert key not in result.stderr + result.stdout
    return lines[0]


def test_bugzilla_unreachable(invoke, deploy_repo, bugzilla_server):
    bugzilla_server.stop()
    line = refused(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert "cannot reach Bugzilla" in line


def test_invalid_api_key(invoke, deploy_repo, bugzilla_server):
    line = refused(invoke, deploy_repo, bugzilla_server, "--file-bug", key="not-a-real-key-123")
    assert "invalid" in line and "306" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [("INVOKE_BUGZILLA_PRODUCT", "Nope"), ("INVOKE_BUGZILLA_COMPONENT", "Nowhere")],
)
def test_unknown_product_or_component(invoke, deploy_repo, bugzilla_server, variable, value):
    result = invoke(
        "deploy.prepare",
        "--repo",
        str(deploy_repo.path),
        "--file-bug",
        extra_env={**bz_env(bugzilla_server), variable: value},
    )
    assert result.returncode != 0
    assert value in result.stderr and "Traceback" not in result.stderr
    assert len([x for x in result.stderr.splitlines() if x.strip()]) == 1
    assert all(b["summary"] != "socorro deploy: 101" for b in bugzilla_server.bugs.values())


def test_unknown_assignee(invoke, deploy_repo, bugzilla_server):
    line = refused(
        invoke, deploy_repo, bugzilla_server, "--file-bug", "--assignee", "who@nowhere.test"
    )
    assert "who@nowhere.test" in line


def test_server_error_500(invoke, deploy_repo, bugzilla_server):
    bugzilla_server.add_fault("/rest/bug", method="POST", status=500)
    line = refused(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert "500" in line


def test_dry_run_files_nothing_and_shows_the_request(invoke, deploy_repo, bugzilla_server):
    result = invoke(
        "--dry",
        "deploy.prepare",
        "--repo",
        str(deploy_repo.path),
        "--file-bug",
        extra_env=bz_env(bugzilla_server),
    )
    assert result.returncode == 0, result.stderr
    assert "POST" in result.stderr and "socorro deploy: 101" in result.stderr
    assert not [e for e in bugzilla_server.journal if e.method in ("POST", "PUT")]
    assert KEY not in result.stderr + result.stdout


def test_needinfo_rerun_does_not_ask_again_after_an_answer(invoke, deploy_repo, bugzilla_server):
    plan = json.loads(run(invoke, deploy_repo, bugzilla_server, "--needinfo", "--json").stdout)
    bug_id = plan["bug_id"]
    answer = bugzilla_server.act_as(ENGINEER)
    answer.comment(bug_id, "Verified on stage.", clear_needinfo=True)
    answer.clear_needinfo(bug_id, ENGINEER)  # upstream: flags don't clear themselves
    assert bugzilla_server.needinfos(bug_id) == []
    comments_before = len(bugzilla_server.comments(bug_id))
    again = run(invoke, deploy_repo, bugzilla_server, "--needinfo")
    assert again.returncode == 0, again.stderr
    assert "nobody to needinfo" in again.stderr
    assert bugzilla_server.needinfos(bug_id) == []
    assert len(bugzilla_server.comments(bug_id)) == comments_before


def test_dry_run_of_a_new_bug_with_needinfo_sends_nothing(invoke, deploy_repo, bugzilla_server):
    result = invoke(
        "--dry",
        "deploy.prepare",
        "--repo",
        str(deploy_repo.path),
        "--needinfo",
        "--json",
        extra_env=bz_env(bugzilla_server),
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["bug_id"] is None and plan["bug_filed_now"] is False and plan["dry_run"] is True
    assert plan["needinfo"] == [ENGINEER]
    assert "would ask on the new bug: engineer@mozilla.com" in result.stderr
    assert not [e for e in bugzilla_server.journal if e.method in ("POST", "PUT")]
    text = invoke(
        "--dry",
        "deploy.prepare",
        "--repo",
        str(deploy_repo.path),
        "--file-bug",
        extra_env=bz_env(bugzilla_server),
    )
    assert "deploy bug: would be filed (dry run; nothing was sent)" in text.stdout


def test_bugs_that_cannot_be_seen_are_counted_not_all_listed(invoke, deploy_repo, bugzilla_server):
    """Regression: a deploy naming thousands of unknown bugs printed them all on one note line."""
    deploy_repo.commit("bugs " + ", ".join(str(n) for n in range(700001, 700016)) + ": cleanup")
    deploy_repo.push()
    result = run(invoke, deploy_repo, bugzilla_server, "--needinfo")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "cannot see" in line]
    assert notes == [
        "note: cannot see 15 referenced bug(s) (700001, 700002, 700003, 700004, 700005, 700006, "
        "700007, 700008, 700009, 700010 and 5 more: private, or not on this Bugzilla); nobody "
        "asked for them"
    ]
    assert bugzilla_server.needinfos(max(bugzilla_server.bugs)) == [ENGINEER]


def test_a_reused_bug_says_what_it_does_not_reflect(invoke, deploy_repo, bugzilla_server):
    """Regression: a rerun after new commits reused the bug silently (its description lists the
    older changes), and --priority / --assignee were dropped without a word."""
    first = run(invoke, deploy_repo, bugzilla_server, "--file-bug", "--json")
    assert first.returncode == 0, first.stderr
    bug_id = json.loads(first.stdout)["bug_id"]
    same = run(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert same.returncode == 0 and "note:" not in same.stderr, same.stderr  # nothing changed

    deploy_repo.commit("bug 777: landed after the bug was filed")
    deploy_repo.push()
    again = run(
        invoke, deploy_repo, bugzilla_server, "--file-bug", "--priority", "P1",
        "--assignee", ENGINEER,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"deploy bug (reused): {bugzilla_server.base}/show_bug.cgi?id={bug_id}" in again.stdout
    assert f"note: bug {bug_id}'s description differs from this plan" in again.stderr
    assert f"note: --assignee applies to a new bug only; bug {bug_id} keeps {RELENG}" in (
        again.stderr
    )
    assert f"note: --priority applies to a new bug only; bug {bug_id} keeps P2" in again.stderr
    bug = bugzilla_server.bug(bug_id)
    assert (bug["priority"], bug["assigned_to"]) == ("P2", RELENG)  # left as it was
    assert len(bugzilla_server.bugs) == 2 + 1  # the two referenced bugs and the deploy bug


def test_duplicate_open_deploy_bugs_are_named(invoke, deploy_repo, bugzilla_server):
    ids = [
        bugzilla_server.add_bug(product="Socorro", component="Infra", summary="socorro deploy: 101")
        for _ in range(2)
    ]
    result = run(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert result.returncode == 0, result.stderr
    assert f"deploy bug (reused): {bugzilla_server.base}/show_bug.cgi?id={ids[0]}" in result.stdout
    assert f"note: open bug(s) {ids[1]} have the same summary too; using the oldest, {ids[0]}" in (
        result.stderr
    )


def test_a_failed_needinfo_after_filing_names_the_filed_bug(invoke, deploy_repo, bugzilla_server):
    """Regression: the bug was filed, the needinfo comment failed, and the error did not say that
    a bug existed now."""
    bugzilla_server.add_fault("/rest/bug/*", method="PUT", status=500, count=None)
    result = run(invoke, deploy_repo, bugzilla_server, "--needinfo")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    (bug_id,) = [
        i for i, b in bugzilla_server.bugs.items() if b["summary"] == "socorro deploy: 101"
    ]
    assert line.startswith(
        f"error: the deploy bug was filed ({bugzilla_server.base}/show_bug.cgi?id={bug_id}) but "
        "the needinfo request failed: "
    )
    assert line.endswith("; rerun the same command to ask again (it reuses the bug)")
    assert bugzilla_server.needinfos(bug_id) == []

    bugzilla_server.faults.clear()
    again = run(invoke, deploy_repo, bugzilla_server, "--needinfo")
    assert again.returncode == 0, again.stderr
    assert bugzilla_server.needinfos(bug_id) == [ENGINEER]
    assert sum(b["summary"] == "socorro deploy: 101" for b in bugzilla_server.bugs.values()) == 1


def test_filing_for_a_head_off_main_is_refused(invoke, deploy_repo, bugzilla_server):
    """Regression: --file-bug --head <a branch> filed a bug that deploy.tag then refuses to tag."""
    deploy_repo.git("checkout", "-q", "-b", "side")
    deploy_repo.commit("bug 1: only on a side branch")
    deploy_repo.git("checkout", "-q", "main")
    line = refused(invoke, deploy_repo, bugzilla_server, "--file-bug", "--head", "side")
    assert line.startswith("error: --head side (") and "is not on main" in line
    assert line.endswith("merge it first; nothing was filed")
    assert not bugzilla_server.writes()


@pytest.mark.parametrize("bad_key", ["two words", "key\twith-tab", "clé-non-ascii"])
def test_an_api_key_that_cannot_be_one_is_named_not_shown(
    invoke, deploy_repo, bugzilla_server, bad_key
):
    """Regression: a non-ASCII key blamed bugzilla.url; a key with a newline said InvalidHeader."""
    line = refused(invoke, deploy_repo, bugzilla_server, "--file-bug", key=bad_key)
    assert line.startswith(
        "error: the Bugzilla API key from BUGZILLA_API_KEY contains spaces, control characters"
    )
    assert bad_key not in line
    assert not bugzilla_server.journal  # nothing was sent


@pytest.mark.parametrize("user", [ENGINEER, "nobody-here@example.com"])
def test_upstream_bugzilla_user_must_be_the_key_s_account(invoke, deploy_repo, user):
    """Regression: an unknown bugzilla.user failed at filing time with "unknown Bugzilla user
    (code 51)", not naming the setting; another person's email was used as the deployer."""
    with FakeBugzilla("upstream") as server:
        env = {**bz_env(server), "INVOKE_BUGZILLA_USER": user}
        result = invoke("deploy.prepare", "--repo", str(deploy_repo.path), "--needinfo",
                        extra_env=env)  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: bugzilla.user {user!r} is not the Bugzilla account of this API key (set it "
            "to the email you log in with)"
        ]
        assert not server.writes()


def test_without_a_key_the_link_carries_the_assignee(invoke, deploy_repo, bugzilla_server):
    """Regression: --assignee without an API key was dropped silently."""
    result = run(
        invoke, deploy_repo, bugzilla_server, "--file-bug", "--assignee", ENGINEER, key=None
    )
    assert result.returncode == 0, result.stderr
    (link,) = [line for line in result.stdout.splitlines() if "enter_bug.cgi" in line]
    assert "&assigned_to=engineer%40mozilla.com" in link


def test_needinfo_never_asks_the_deployer_even_with_another_assignee(
    invoke, deploy_repo, bugzilla_server
):
    """Regression: with --assignee on a reused bug, the assignee was taken for the deployer, so
    the person running the task was asked to verify their own bug."""
    assert run(invoke, deploy_repo, bugzilla_server, "--file-bug").returncode == 0
    result = run(
        invoke, deploy_repo, bugzilla_server, "--needinfo", "--json", "--assignee", ENGINEER
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["needinfo"] == [ENGINEER]  # owns bugs[0]; RELENG owns bugs[1] and runs this
    assert bugzilla_server.needinfos(plan["bug_id"]) == [ENGINEER]


def needinfo_with_a_change_by(invoke, repo, server, email: str, **account):
    """Land a change on a bug assigned to a new user `email` (with `account` attributes), run
    --needinfo --json; (that bug, the result, the plan). Only ENGINEER must have been asked."""
    server.add_user(email, **account)
    bug = server.add_bug(product="Socorro", component="General", summary="w", assigned_to=email)
    repo.commit(f"bug {bug}: by {email}")
    repo.push()
    result = run(invoke, repo, server, "--needinfo", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["needinfo"] == [ENGINEER]
    assert server.needinfos(plan["bug_id"]) == [ENGINEER]
    return bug, result, plan


def test_needinfo_skips_a_disabled_account_and_says_so(invoke, deploy_repo, bugzilla_server):
    """Regression: a disabled assignee was put in the needinfo request, which BMO refuses as a
    whole (flag_requestee_disabled), so no one was asked, on every rerun."""
    gone, result, plan = needinfo_with_a_change_by(
        invoke, deploy_repo, bugzilla_server, "gone@mozilla.com", can_login=False
    )
    assert (
        f"note: not asking gone@mozilla.com about bug(s) {gone}: the account is disabled; "
        "verify those yourself"
    ) in result.stderr


def test_the_text_is_printed_before_bugzilla_fails(invoke, deploy_repo, bugzilla_server):
    """Regression: when filing failed, stdout was empty: the text to file by hand was lost."""
    bugzilla_server.add_fault("/rest/bug", method="POST", status=500, count=None)
    result = run(invoke, deploy_repo, bugzilla_server, "--file-bug")
    assert result.returncode == 1
    assert result.stdout.startswith("summary:\nsocorro deploy: 101\n\ndescription:\n")
    assert f"bug {deploy_repo.bugs[0]}: fix the crash list" in result.stdout
    assert "deploy bug (" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_needinfo_leaves_out_someone_who_blocks_needinfo(invoke, deploy_repo, bugzilla_server):
    """BMO refuses the whole change when one requestee blocks needinfo (needinfo_blocked): the
    others are still asked, in one comment, and the one left out is named."""
    busy, result, plan = needinfo_with_a_change_by(
        invoke, deploy_repo, bugzilla_server, "busy@mozilla.com", accepts_needinfo=False
    )
    comments = bugzilla_server.comments(plan["bug_id"])
    assert len(comments) == 2 and "busy@mozilla.com" not in comments[1]["text"]
    assert (
        f"note: not asking busy@mozilla.com about bug(s) {busy}: they do not accept needinfo "
        "requests now; verify those yourself"
    ) in result.stderr
