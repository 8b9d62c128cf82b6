"""pii.* end to end: the real `invoke` binary against the fake Bugzilla (BMO and upstream)."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import bugzilla
import pytest

from tests.fake_bugzilla import RELENG, SEED_USERS, FakeBugzilla

KEY = SEED_USERS[RELENG]
REQUESTER = "requester@mozilla.com"
MANAGER = "manager@mozilla.com"
ADMIN_LINK = "https://crash-stats.mozilla.org/admin/auth/user/?q=requester%40mozilla.com"


@pytest.fixture
def pii(invoke):
    """Run `invoke ...` against a fake server with the releng user's key."""

    def run(server: FakeBugzilla, *args: str, key: str | None = KEY, **kwargs):
        extra = {"INVOKE_BUGZILLA_URL": server.url}
        if key is not None:
            extra["BUGZILLA_API_KEY"] = key
        extra.update(kwargs.pop("extra_env", {}))
        result = invoke(*args, extra_env=extra, **kwargs)
        assert "Traceback" not in result.stderr, result.stderr
        assert KEY not in result.stdout + result.stderr
        return result

    return run


def access_bug(server: FakeBugzilla) -> int:
    return server.add_bug(
        product="Socorro",
        component="General",
        summary="grant requester access to protected data",
        creator=REQUESTER,
        description="I need access to memory dumps to debug crashes.",
    )


def request_args(bug_id: int, requester: str = REQUESTER, manager: str = MANAGER) -> tuple:
    return ("pii.request", str(bug_id), "--requester", requester, "--manager", manager)


def status_json(pii, server: FakeBugzilla, bug_id: int) -> dict:
    result = pii(server, "pii.status", str(bug_id), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_full_flow_from_request_to_resolved_bug(bugzilla_server, pii):
    server = bugzilla_server
    bug_id = access_bug(server)

    # 1. The request: two comments, one needinfo each (new: true).
    result = pii(server, *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert f"asked {REQUESTER} for the access agreement" in result.stdout
    assert f"asked {MANAGER} for the manager confirmation" in result.stdout
    comments = server.comments(bug_id)
    assert len(comments) == 3
    agreement, confirmation = comments[1]["text"], comments[2]["text"]
    assert "https://crash-stats.mozilla.org/documentation/protected_data_access/" in agreement
    assert "Delete downloaded memory dumps within 30 days" in agreement
    assert agreement.startswith(f"{REQUESTER}: ")
    assert confirmation.startswith(f"{MANAGER}: {REQUESTER} is asking for access")
    assert server.needinfos(bug_id) == [REQUESTER, MANAGER]
    puts = server.requests("PUT")
    assert [p.body["flags"] for p in puts] == [
        [{"name": "needinfo", "status": "?", "requestee": REQUESTER, "new": True}],
        [{"name": "needinfo", "status": "?", "requestee": MANAGER, "new": True}],
    ]
    if server.mode == "bmo":
        assert not any(e.key_in_url for e in server.journal)
        assert {e.auth for e in server.journal} == {"header"}

    # 2. A rerun posts nothing twice.
    result = pii(server, *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert "nothing to post" in result.stdout
    assert "already posted" in result.stderr
    assert len(server.requests("PUT")) == 2 and len(server.comments(bug_id)) == 3

    # 3. Status: both pending; grant refuses.
    state = status_json(pii, server, bug_id)
    assert [(r["kind"], r["person"], r["state"]) for r in state["requests"]] == [
        ("agreement", REQUESTER, "pending"),
        ("manager", MANAGER, "pending"),
    ]
    assert state["ready_to_grant"] is False and state["requester"] == REQUESTER
    result = pii(server, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 1
    assert "cannot grant yet" in result.stderr
    assert f"{REQUESTER} (access agreement), {MANAGER} (manager confirmation)" in result.stderr
    assert len(server.requests("PUT")) == 2

    # 4. The requester answers and clears the needinfo; the manager's is cleared by someone else.
    server.act_as(REQUESTER).comment(bug_id, "I agree to these terms.\n\nThanks!")
    result = pii(server, "pii.status", str(bug_id))
    assert result.returncode == 0, result.stderr
    assert f"access agreement ({REQUESTER}): answered by {REQUESTER} at " in result.stdout, (
        result.stdout
    )
    assert ': "I agree to these terms."' in result.stdout
    assert f"manager confirmation ({MANAGER}): pending" in result.stdout
    assert f"waiting for {MANAGER}" in result.stdout
    assert pii(server, "pii.grant", str(bug_id), "--yes").returncode == 1

    engineer = bugzilla.Bugzilla(
        server.url,
        api_key=SEED_USERS["engineer@mozilla.com"],
        force_rest=True,
        use_creds=False,
    )
    flag_id = next(f["id"] for f in server.flags(bug_id) if f.get("requestee") == MANAGER)
    engineer.update_bugs(
        [bug_id],
        engineer.build_update(
            comment="Their manager confirmed this by email; clearing the needinfo.",
            flags=[{"id": flag_id, "status": "X"}],
        ),
    )
    state = status_json(pii, server, bug_id)
    manager = state["requests"][1]
    assert manager["state"] == "answered"
    assert manager["answered_by"] == "engineer@mozilla.com"
    assert manager["reply"] == "Their manager confirmed this by email; clearing the needinfo."
    assert manager["replied_by_person"] is False
    assert state["requests"][0]["replied_by_person"] is True
    assert state["ready_to_grant"] is False
    assert "--accept-answer-from-others" in state["next_step"]

    # Someone else's answer is not the manager's: grant refuses, pii.request asks again.
    writes = len(server.writes())
    result = pii(server, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot grant: {MANAGER} did not reply to the manager confirmation request "
        f"themselves (needinfo cleared by engineer@mozilla.com with a comment); ask again with "
        f"`invoke pii.request {bug_id} --requester {REQUESTER} --manager {MANAGER}`, or accept "
        f"that answer with --accept-answer-from-others"
    )
    assert len(server.writes()) == writes
    result = pii(server, *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert f"asking again, since {MANAGER} did not reply" in result.stderr
    assert f"asked {MANAGER} for the manager confirmation" in result.stdout
    assert f"asked {REQUESTER}" not in result.stdout
    assert server.needinfos(bug_id) == [MANAGER]
    assert len(server.writes()) == writes + 1
    assert pii(server, "pii.grant", str(bug_id), "--yes").returncode == 1
    server.act_as(MANAGER).comment(bug_id, "Confirmed: needed for crash triage.")
    state = status_json(pii, server, bug_id)
    manager = state["requests"][1]
    assert (manager["answered_by"], manager["replied_by_person"]) == (MANAGER, True)
    assert manager["reply"] == "Confirmed: needed for crash triage."
    assert state["ready_to_grant"] is True

    # 5. Grant: without a terminal --yes is required; then the admin step and the reply.
    writes = len(server.writes())
    result = pii(server, "pii.grant", str(bug_id))
    assert result.returncode == 1 and "--yes" in result.stderr
    assert ADMIN_LINK in result.stdout
    assert len(server.writes()) == writes
    result = pii(server, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 0, result.stderr
    assert ADMIN_LINK in result.stdout and '"Hackers" group' in result.stdout
    assert "resolved" in result.stdout
    bug = server.bug(bug_id)
    assert (bug["status"], bug["resolution"]) == ("RESOLVED", "FIXED")
    reply = server.comments(bug_id)[-1]
    assert reply["creator"] == RELENG
    assert "You might have to log out and log back in again" in reply["text"]

    # 6. A rerun changes nothing.
    writes = len(server.writes())
    result = pii(server, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 0, result.stderr
    assert "already granted" in result.stdout
    result = pii(server, *request_args(bug_id))
    assert result.returncode == 1 and "RESOLVED FIXED" in result.stderr
    assert len(server.writes()) == writes
    state = status_json(pii, server, bug_id)
    assert state["granted"] is True and state["granted_by"] == RELENG


def test_requester_outside_employee_domains_is_refused(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    result = pii(fake_bugzilla, *request_args(bug_id, requester="contractor@example.com"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: requester contractor@example.com is not in an employee domain (mozilla.com, "
        "mozilla.org): protected data access is only for employees (pii.employee_domains); "
        "nothing was posted"
    )
    assert fake_bugzilla.journal == []
    # The domains come from config.
    result = pii(
        fake_bugzilla,
        *request_args(bug_id, requester="contractor@example.com"),
        extra_env={"INVOKE_PII_EMPLOYEE_DOMAINS": "example.com,mozilla.com"},
    )
    assert result.returncode == 0, result.stderr
    assert fake_bugzilla.needinfos(bug_id) == ["contractor@example.com", MANAGER]


def test_bad_input_posts_nothing(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    cases = [
        (("pii.request", "-5", "--requester", REQUESTER, "--manager", MANAGER), "must not start"),
        (("pii.request", "abc", "--requester", REQUESTER, "--manager", MANAGER), "bug number"),
        (("pii.request", str(bug_id), "--manager", MANAGER), "--requester EMAIL is required"),
        (("pii.request", str(bug_id), "--requester", REQUESTER), "--manager EMAIL is required"),
        (request_args(bug_id, manager="not-an-email"), "must be an email address"),
        (request_args(bug_id, manager=REQUESTER), "someone other than the requester"),
        (request_args(bug_id, manager="ghost@mozilla.com"), "no Bugzilla account for ghost@"),
        (request_args(4242), "bug 4242 does not exist (code 101)"),
        (("pii.grant", str(bug_id), "--yes"), "has no access request from pii.request"),
        (("pii.status", "0"), "bug number"),
    ]
    for args, message in cases:
        result = pii(fake_bugzilla, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fake_bugzilla.writes() == []
    assert len(fake_bugzilla.comments(bug_id)) == 1


def test_keys_and_servers(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    result = pii(fake_bugzilla, *request_args(bug_id), key=None)
    assert result.returncode == 1 and "no Bugzilla API key" in result.stderr
    result = pii(fake_bugzilla, *request_args(bug_id), key="revoked-key-0000")
    assert result.returncode == 1
    assert "the Bugzilla API key is invalid (code 306)" in result.stderr
    assert "revoked-key-0000" not in result.stdout + result.stderr
    fake_bugzilla.stop()
    result = pii(fake_bugzilla, "pii.status", str(bug_id))
    assert result.returncode == 1 and "cannot reach Bugzilla at" in result.stderr
    assert fake_bugzilla.writes() == []


def test_status_works_anonymously_and_without_a_request(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    result = pii(fake_bugzilla, "pii.status", str(bug_id), key=None)
    assert result.returncode == 0, result.stderr
    assert "no access request was posted" in result.stdout
    assert f"invoke pii.request {bug_id} --requester EMAIL --manager EMAIL" in result.stdout


def test_interrupted_request_is_completed_by_a_rerun(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    fake_bugzilla.add_fault(f"/rest/bug/{bug_id}", method="PUT", status=500, after=1)
    result = pii(fake_bugzilla, *request_args(bug_id))
    assert result.returncode == 1 and "failed with HTTP 500" in result.stderr
    assert fake_bugzilla.needinfos(bug_id) == [REQUESTER]
    result = pii(fake_bugzilla, *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert "access agreement request was already posted" in result.stderr
    assert fake_bugzilla.needinfos(bug_id) == [REQUESTER, MANAGER]
    assert len(fake_bugzilla.comments(bug_id)) == 3


def test_request_for_another_person_or_manager_is_refused(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    assert pii(fake_bugzilla, *request_args(bug_id)).returncode == 0
    writes = len(fake_bugzilla.writes())
    result = pii(fake_bugzilla, *request_args(bug_id, requester="engineer@mozilla.com"))
    assert result.returncode == 1 and f"already holds a request for {REQUESTER}" in result.stderr
    result = pii(fake_bugzilla, *request_args(bug_id, manager="engineer@mozilla.com"))
    assert result.returncode == 1 and f"already asked {MANAGER}" in result.stderr
    assert len(fake_bugzilla.writes()) == writes


def test_dry_run_posts_nothing(bugzilla_server, pii):
    server = bugzilla_server
    bug_id = access_bug(server)
    result = pii(server, "--dry", *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert f"would ask {REQUESTER}" in result.stdout
    masked = "?Bugzilla_api_key=********" if server.mode == "upstream" else ""
    assert f"dry-run: would send PUT {server.url}bug/{bug_id}{masked}\n" in result.stderr
    assert '"requestee": "manager@mozilla.com"' in result.stderr
    assert server.writes() == []

    pii(server, *request_args(bug_id))
    server.act_as(REQUESTER).comment(bug_id, "I agree.")
    server.act_as(MANAGER).comment(bug_id, "Confirmed.")
    writes = len(server.writes())
    result = pii(server, "--dry", "pii.grant", str(bug_id))
    assert result.returncode == 0, result.stderr
    assert ADMIN_LINK in result.stdout and "dry-run: would post" in result.stdout
    assert '"resolution": "FIXED"' in result.stderr
    assert len(server.writes()) == writes
    assert server.bug(bug_id)["is_open"] is True


def test_bmo_requestee_comment_alone_answers(fake_bugzilla, pii):
    """On BMO a comment by the requestee clears their needinfo (Needinfo extension)."""
    bug_id = access_bug(fake_bugzilla)
    pii(fake_bugzilla, *request_args(bug_id))
    fake_bugzilla.act_as(MANAGER).comment(
        bug_id, "Yes, needed for crash triage.", clear_needinfo=False
    )
    state = status_json(pii, fake_bugzilla, bug_id)
    assert state["requests"][1] | {"requested_at": None, "answered_at": None} == {
        "kind": "manager",
        "person": MANAGER,
        "state": "answered",
        "requested_at": None,
        "requested_by": RELENG,
        "answered_by": MANAGER,
        "answered_at": None,
        "reply": "Yes, needed for crash triage.",
        "comment_count": 2,
        "replied_by_person": True,
    }


def test_template_override_and_syntax_error(fake_bugzilla, pii, tmp_path):
    bug_id = access_bug(fake_bugzilla)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "pii_manager_request.md.j2").write_text("{{ manager }}: please confirm {% if %}\n")
    result = pii(
        fake_bugzilla,
        *request_args(bug_id),
        extra_env={"INVOKE_TEMPLATES_DIR": str(templates)},
    )
    assert result.returncode == 1
    assert "pii_manager_request.md.j2, line 1" in result.stderr
    assert fake_bugzilla.writes() == []
    (templates / "pii_manager_request.md.j2").write_text("{{ manager }}: confirm, please.\n")
    result = pii(
        fake_bugzilla,
        *request_args(bug_id),
        extra_env={"INVOKE_TEMPLATES_DIR": str(templates)},
    )
    assert result.returncode == 0, result.stderr
    text = fake_bugzilla.comments(bug_id)[-1]["text"]
    assert text.startswith(f"{MANAGER}: confirm, please.\n")
    assert text.rstrip().endswith(f"requester={REQUESTER}]")


def test_needinfo_cleared_without_reply_and_bug_closed_by_hand(fake_bugzilla, pii):
    bug_id = access_bug(fake_bugzilla)
    assert pii(fake_bugzilla, *request_args(bug_id)).returncode == 0
    fake_bugzilla.act_as(MANAGER).clear_needinfo(bug_id)
    fake_bugzilla.act_as("engineer@mozilla.com").clear_needinfo(bug_id, REQUESTER)
    result = pii(fake_bugzilla, "pii.status", str(bug_id))
    assert result.returncode == 0, result.stderr
    assert f"access agreement ({REQUESTER}): answered by engineer@mozilla.com at " in result.stdout
    assert f"(no reply comment) [no reply from {REQUESTER}]" in result.stdout
    assert f"{REQUESTER} did not reply to the access agreement request themselves" in (
        result.stdout
    )
    assert f"`invoke pii.grant {bug_id} --accept-answer-from-others`" in result.stdout
    fake_bugzilla.act_as(RELENG).update(bug_id, status="RESOLVED", resolution="WONTFIX")
    writes = len(fake_bugzilla.writes())
    result = pii(fake_bugzilla, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 1
    assert "already RESOLVED WONTFIX without an access-granted reply" in result.stderr
    assert len(fake_bugzilla.writes()) == writes


def test_confidential_bug_needs_a_key(fake_bugzilla, pii):
    bug_id = fake_bugzilla.add_bug(
        summary="grant x access", groups=["mozilla-employee-confidential"]
    )
    result = pii(fake_bugzilla, "pii.status", str(bug_id), key=None)
    assert result.returncode == 1
    assert f"bug {bug_id} is not public: set BUGZILLA_API_KEY" in result.stderr
    result = pii(fake_bugzilla, "pii.status", str(bug_id))
    assert result.returncode == 1
    assert f"your Bugzilla account may not see bug {bug_id} (code 102)" in result.stderr
    fake_bugzilla.users[RELENG].groups.append("mozilla-employee-confidential")
    result = pii(fake_bugzilla, *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert fake_bugzilla.needinfos(bug_id) == [REQUESTER, MANAGER]


def test_needinfo_cleared_by_someone_else_is_no_confirmation(bugzilla_server, pii):
    """The tester's case: engineer@ clears the manager's needinfo without a word."""
    server = bugzilla_server
    bug_id = access_bug(server)
    assert pii(server, *request_args(bug_id)).returncode == 0
    server.act_as(REQUESTER).comment(bug_id, "I agree to these terms.")
    server.act_as("engineer@mozilla.com").clear_needinfo(bug_id, MANAGER)
    result = pii(server, "pii.status", str(bug_id))
    assert result.returncode == 0, result.stderr
    assert (
        f"manager confirmation ({MANAGER}): answered by engineer@mozilla.com at " in result.stdout
    )
    assert f"(no reply comment) [no reply from {MANAGER}]" in result.stdout
    writes = len(server.writes())
    result = pii(server, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert (
        f"cannot grant: {MANAGER} did not reply to the manager confirmation request themselves "
        f"(needinfo cleared by engineer@mozilla.com without a comment)" in result.stderr
    )
    assert "--accept-answer-from-others" in result.stderr
    assert len(server.writes()) == writes and server.bug(bug_id)["is_open"] is True
    result = pii(server, "--help", "pii.grant")
    assert "--accept-answer-from-others" in result.stdout

    # The explicit override says whose answer it accepts, then grants.
    result = pii(server, "pii.grant", str(bug_id), "--yes", "--accept-answer-from-others")
    assert result.returncode == 0, result.stderr
    assert (
        f"accepting the answer of engineer@mozilla.com for the manager confirmation asked of "
        f"{MANAGER} (--accept-answer-from-others)" in result.stderr
    )
    assert result.stderr.count("accepting the answer") == 1  # the requester answered herself
    bug = server.bug(bug_id)
    assert (bug["status"], bug["resolution"]) == ("RESOLVED", "FIXED")


def test_reply_before_the_request_does_not_answer_it(fake_bugzilla_upstream, pii):
    """Only a reply after the request counts (upstream: comments leave the needinfo alone)."""
    server = fake_bugzilla_upstream
    bug_id = access_bug(server)
    server.act_as(MANAGER).comment(bug_id, "I support this.")
    assert pii(server, *request_args(bug_id)).returncode == 0
    server.act_as(REQUESTER).comment(bug_id, "I agree.")
    server.act_as("engineer@mozilla.com").clear_needinfo(bug_id, MANAGER)
    state = status_json(pii, server, bug_id)
    assert [r["replied_by_person"] for r in state["requests"]] == [True, False]
    result = pii(server, "pii.grant", str(bug_id), "--yes")
    assert result.returncode == 1 and "cannot grant" in result.stderr
    assert server.bug(bug_id)["is_open"] is True


def test_login_in_bugzilla_url_is_never_printed(fake_bugzilla, pii):
    server = fake_bugzilla
    bug_id = access_bug(server)
    url = server.url.replace("http://", "http://me:s3cret@", 1)
    env = {"INVOKE_BUGZILLA_URL": url}
    for args in (
        ("pii.status", str(bug_id)),
        ("--dry", *request_args(bug_id)),
        ("pii.status", "4242"),
    ):
        result = pii(server, *args, extra_env=env)
        output = result.stdout + result.stderr
        assert "s3cret" not in output and "me:" not in output, output
    result = pii(server, *request_args(bug_id), extra_env=env)
    assert result.returncode == 0, result.stderr
    assert f"on {server.base}/show_bug.cgi?id={bug_id}" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    assert all(e.headers.get("Authorization", "").startswith("Basic ") for e in server.journal)
    server.stop()
    result = pii(server, "pii.status", str(bug_id), extra_env=env)
    assert result.returncode == 1 and f"cannot reach Bugzilla at {server.base}" in result.stderr
    assert "s3cret" not in result.stderr


_DRY_LINE = re.compile(r"^dry-run: (runs read-only|would send):? ([A-Z]+) (\S+)$", re.M)


def _comparable(method: str, target: str, query: dict[str, list[str]] | None = None) -> tuple:
    """(method, path, query without API keys): what a dry-run line and a journal entry share."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True) if query is None else query
    kept = {k: sorted(v) for k, v in query.items() if k not in ("Bugzilla_api_key", "api_key")}
    return method, parts.path, sorted(kept.items())


def test_dry_run_prints_every_request_of_a_real_run(bugzilla_server, pii):
    """Each dry run prints exactly the requests (reads and writes) of the same real run."""
    server = bugzilla_server
    bug_id = access_bug(server)

    def dry_then_real(*args: str) -> None:
        start = len(server.journal)
        dry = pii(server, "--dry", *args)
        assert dry.returncode == 0, dry.stderr
        dry_entries = server.journal[start:]
        assert all(e.method == "GET" for e in dry_entries)
        printed = _DRY_LINE.findall(dry.stderr)
        reads = [line for line in printed if line[0] == "runs read-only"]
        # What the dry run itself read from the server, it printed, in order.
        assert [_comparable(m, url) for _, m, url in reads] == [
            _comparable(e.method, e.path, e.query) for e in dry_entries
        ]
        assert KEY not in dry.stderr
        assert re.search(r"api_key=(?!\*{8}[&\s])", dry.stderr) is None, dry.stderr
        start = len(server.journal)
        real = pii(server, *args)
        assert real.returncode == 0, real.stderr
        real_entries = server.journal[start:]
        assert any(e.method == "PUT" for e in real_entries)
        assert [_comparable(m, url) for _, m, url in printed] == [
            _comparable(e.method, e.path, e.query) for e in real_entries
        ]

    dry_then_real(*request_args(bug_id))
    server.act_as(REQUESTER).comment(bug_id, "I agree.")
    server.act_as(MANAGER).comment(bug_id, "Confirmed.")
    dry_then_real("pii.grant", str(bug_id), "--yes")
    assert server.bug(bug_id)["status"] == "RESOLVED"
    if server.mode == "upstream":  # the key went as a parameter: masked in what was printed
        assert any(e.key_in_url for e in server.journal)


def test_timeout_on_a_post_then_rerun(fake_bugzilla, pii):
    """The first comment reached the server but its answer came too late: the rerun completes."""
    server = fake_bugzilla
    bug_id = access_bug(server)
    server.add_fault(f"/rest/bug/{bug_id}", method="PUT", status=None, delay=1.5)
    result = pii(server, *request_args(bug_id), extra_env={"INVOKE_BUGZILLA_TIMEOUT": "0.5"})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "did not answer within 0.5 seconds (bugzilla.timeout) to a PUT" in result.stderr
    assert "the change may or may not have been applied; rerunning is safe" in result.stderr
    for _ in range(50):  # the server finishes the delayed request
        if server.needinfos(bug_id):
            break
        time.sleep(0.1)
    assert server.needinfos(bug_id) == [REQUESTER]
    result = pii(server, *request_args(bug_id))
    assert result.returncode == 0, result.stderr
    assert "access agreement request was already posted" in result.stderr
    assert server.needinfos(bug_id) == [REQUESTER, MANAGER]
    assert len(server.comments(bug_id)) == 3
