"""The fake Bugzilla itself, driven through python-bugzilla over HTTP (both modes)."""

from __future__ import annotations

import json
import urllib.request

import bugzilla
import pytest
import requests
from bugzilla import BugzillaError
from bugzilla.exceptions import BugzillaHTTPError

from tests.fake_bugzilla import FIRST_BUG_ID, RELENG, SEED_USERS, FakeBugzilla

KEY = SEED_USERS[RELENG]


def connect(server: FakeBugzilla, key: str | None = KEY, header: bool = False) -> bugzilla.Bugzilla:
    if header:
        session = requests.Session()
        session.headers["X-BUGZILLA-API-KEY"] = key
        return bugzilla.Bugzilla(
            server.url, force_rest=True, use_creds=False, requests_session=session
        )
    return bugzilla.Bugzilla(server.url, api_key=key, force_rest=True, use_creds=False)


def new_bug(bz: bugzilla.Bugzilla, server: FakeBugzilla, **fields) -> int:
    data = bz.build_createbug(
        product="Socorro", component="Infra", summary="socorro deploy: 101", description="Deploy"
    )
    if server.mode == "bmo":
        data["type"] = "task"
    else:
        data["version"] = "unspecified"
    data.update(fields)
    return bz.createbug(data).bug_id


def code_of(excinfo: pytest.ExceptionInfo) -> int | None:
    return BugzillaError.get_bugzilla_error_code(excinfo.value)


def test_version_and_int_ids(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    assert bug_id == FIRST_BUG_ID and isinstance(bug_id, int)
    bug = bz.getbug(bug_id)
    assert bug.summary == "socorro deploy: 101"
    assert bug.status == ("NEW" if bugzilla_server.mode == "bmo" else "CONFIRMED")
    assert bugzilla_server.comments(bug_id)[0]["text"] == "Deploy"
    if bugzilla_server.mode == "bmo":
        assert bz.bz_ver_major == 20260820
        assert bug.type == "task"
        assert bug.alias is None
    else:
        assert (bz.bz_ver_major, bz.bz_ver_minor) == (5, 0)
        assert "type" not in bug.get_raw_data()
        assert bug.alias == []


def test_bad_key_fails_on_version_in_every_form(bugzilla_server):
    with pytest.raises(BugzillaError) as excinfo:
        connect(bugzilla_server, key="not-a-key")
    assert code_of(excinfo) == 306
    if bugzilla_server.mode == "bmo":
        with pytest.raises(BugzillaError) as excinfo:
            connect(bugzilla_server, key="not-a-key", header=True)
        assert code_of(excinfo) == 306
    else:  # upstream ignores the header: anonymous, no error
        bz = connect(bugzilla_server, key="not-a-key", header=True)
        assert bz.logged_in is False


def test_header_auth(bugzilla_server):
    bz = connect(bugzilla_server, header=True)
    journal = bugzilla_server.requests("GET", "/rest/version")[-1]
    assert journal.auth_forms == ["header"]
    assert journal.headers["X-BUGZILLA-API-KEY"] == "<redacted>"
    assert not journal.key_in_url
    if bugzilla_server.mode == "bmo":
        assert journal.auth == "header" and journal.user == RELENG
        assert bz.logged_in is True
        assert bz._backend._get("/whoami")["name"] == RELENG
    else:
        assert journal.auth is None and journal.user is None
        with pytest.raises(BugzillaError) as excinfo:
            new_bug(bz, bugzilla_server)
        assert code_of(excinfo) == 410
        assert bugzilla_server.bugs == {}


def test_param_auth_is_journaled_redacted(bugzilla_server):
    connect(bugzilla_server)
    entry = bugzilla_server.journal[-1]
    assert entry.auth == "query:Bugzilla_api_key" and entry.key_in_url
    assert entry.query["Bugzilla_api_key"] == ["<redacted>"]
    assert KEY not in entry.target


def test_header_wins_over_param_on_bmo(fake_bugzilla):
    session = requests.Session()
    session.headers["X-BUGZILLA-API-KEY"] = SEED_USERS["engineer@mozilla.com"]
    bz = bugzilla.Bugzilla(
        fake_bugzilla.url, api_key=KEY, force_rest=True, use_creds=False, requests_session=session
    )
    assert bz._backend._get("/whoami")["name"] == "engineer@mozilla.com"


def test_body_api_key_and_writes_without_auth(bugzilla_server):
    bz = connect(bugzilla_server, key=None)
    with pytest.raises(BugzillaError) as excinfo:
        new_bug(bz, bugzilla_server)
    assert code_of(excinfo) == 410
    body = {"product": "Socorro", "component": "Infra", "summary": "x", "api_key": KEY}
    body["type" if bugzilla_server.mode == "bmo" else "version"] = (
        "task" if bugzilla_server.mode == "bmo" else "unspecified"
    )
    answer = requests.post(bugzilla_server.url + "bug", json=body, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"id": FIRST_BUG_ID}
    assert bugzilla_server.journal[-1].auth == "body:api_key"
    assert bugzilla_server.journal[-1].body["api_key"] == "<redacted>"


def test_create_validation(bugzilla_server):
    bz = connect(bugzilla_server)
    cases = [
        ({"product": "Nope"}, 106, 401),
        ({"component": "Nope"}, 105, 400),
        ({"summary": ""}, 107, 400),
        ({"assigned_to": "ghost@example.com"}, 51, 404),
        ({"version": "9.9"}, 51, 404),
    ]
    if bugzilla_server.mode == "bmo":
        cases.append(({"type": "--"}, 135, 400))
    else:
        cases.append(({"type": "task"}, 53, 400))
        cases.append(({"version": None}, 32000, 400))
    for fields, code, status in cases:
        with pytest.raises(BugzillaError) as excinfo:
            new_bug(bz, bugzilla_server, **fields)
        assert code_of(excinfo) == code, fields
        assert bugzilla_server.journal[-1].status == status
    assert bugzilla_server.bugs == {}


def test_missing_type_on_bmo(fake_bugzilla):
    bz = connect(fake_bugzilla)
    data = bz.build_createbug(product="Socorro", component="Infra", summary="s")
    with pytest.raises(BugzillaError) as excinfo:
        bz.createbug(data)
    assert code_of(excinfo) == 135


def test_version_optional_on_bmo(fake_bugzilla):
    bz = connect(fake_bugzilla)
    bug_id = new_bug(bz, fake_bugzilla)
    assert fake_bugzilla.bug(bug_id)["version"] == "unspecified"


def test_error_envelope_and_unknown_route(bugzilla_server):
    answer = requests.get(bugzilla_server.url + "nonexistent", timeout=10)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {
        "error": True,
        "code": 32614,
        "message": "A REST API resource was not found for 'GET /nonexistent'.",
        "documentation": "https://bmo.readthedocs.io/en/latest/api/",
    }
    assert requests.get(bugzilla_server.base + "/version", timeout=10).status_code == 404


def test_get_bug_errors_and_fields(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server, alias="deploy-101")
    with pytest.raises(BugzillaError) as excinfo:
        bz.getbug(999)
    assert code_of(excinfo) == 101
    assert bz.getbug("deploy-101").bug_id == bug_id
    with pytest.raises(BugzillaError) as excinfo:
        bz.getbug("no-such-alias")
    assert code_of(excinfo) == 100
    bug = bz.getbug(bug_id, include_fields=["summary", "status"])
    assert set(bug.get_raw_data()) == {"id", "summary", "status"}
    raw = requests.get(
        f"{bugzilla_server.url}bug/{bug_id}?include_fields=summary,flags&exclude_fields=flags",
        timeout=10,
    ).json()
    assert raw["bugs"][0] == {"summary": "socorro deploy: 101"}


def test_private_bug(fake_bugzilla):
    bug_id = fake_bugzilla.add_bug(summary="secret", groups=["crash-stats-pii"])
    with pytest.raises(BugzillaError) as excinfo:
        connect(fake_bugzilla).getbug(bug_id)
    assert code_of(excinfo) == 102
    fake_bugzilla.users[RELENG].groups.append("crash-stats-pii")
    assert connect(fake_bugzilla).getbug(bug_id).summary == "secret"


def test_search_by_summary_product_status(bugzilla_server):
    bz = connect(bugzilla_server)
    first = new_bug(bz, bugzilla_server)
    second = new_bug(bz, bugzilla_server, summary="socorro deploy: 1010")
    other = new_bug(bz, bugzilla_server, product="Firefox", component="General")
    found = bz.query(bz.build_query(product="Socorro", short_desc="socorro deploy: 101"))
    assert sorted(b.bug_id for b in found) == [first, second]
    found = bz.query({"product": ["Socorro"], "summary": "DEPLOY: 1010"})
    assert [b.bug_id for b in found] == [second]
    bz.update_bugs([first], bz.build_update(status="RESOLVED", resolution="FIXED"))
    open_status = "NEW" if bugzilla_server.mode == "bmo" else "CONFIRMED"
    found = bz.query(bz.build_query(short_desc="socorro deploy", status=open_status))
    assert sorted(b.bug_id for b in found) == [second, other]
    found = bz.query({"summary": "deploy", "resolution": ["FIXED"]})
    assert [b.bug_id for b in found] == [first]
    assert sorted(b.bug_id for b in bz.getbugs([first, other, 42])) == [first, other]
    with pytest.raises(BugzillaError) as excinfo:
        bz.query({})
    assert code_of(excinfo) == 32000


def test_comments_put_and_post(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    bz.getbug(bug_id).addcomment("D\u00e9ploiement \u2713")
    answer = bz._backend._post(f"/bug/{bug_id}/comment", {"comment": "posted", "is_markdown": True})
    assert bugzilla_server.journal[-1].status == 201
    comments = bz.getbug(bug_id).getcomments()
    assert [c["text"] for c in comments] == ["Deploy", "D\u00e9ploiement \u2713", "posted"]
    assert comments[-1]["id"] == answer["id"] and comments[-1]["is_markdown"] is True
    assert [c["count"] for c in comments] == [0, 1, 2]
    with pytest.raises(BugzillaError) as excinfo:
        bz._backend._post(f"/bug/{bug_id}/comment", {"comment": "   "})
    assert code_of(excinfo) == 50


def test_comment_length_limit(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    bz.update_bugs([bug_id], bz.build_update(comment="x" * 65535))
    for call in (
        lambda: bz.update_bugs([bug_id], bz.build_update(comment="x" * 65536)),
        lambda: bz._backend._post(f"/bug/{bug_id}/comment", {"comment": "y" * 65536}),
    ):
        with pytest.raises(BugzillaError) as excinfo:
            call()
        assert code_of(excinfo) == 114
    assert len(bugzilla_server.comments(bug_id)) == 2


def test_status_workflow(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    for update, code in (
        ({"status": "RESOLVED"}, 121),
        ({"resolution": "FIXED"}, 122),
        ({"status": "CLOSED", "resolution": "FIXED"}, 123),
        ({"status": "VERIFIED", "resolution": "FIXED"}, 123),
    ):
        with pytest.raises(BugzillaError) as excinfo:
            bz.update_bugs([bug_id], update)
        assert code_of(excinfo) == code, update
    with pytest.raises(BugzillaError) as excinfo:
        bz.getbug(bug_id).close("FIXED", comment="done")  # python-bugzilla sends CLOSED
    assert code_of(excinfo) == 123
    assert bugzilla_server.bug(bug_id)["status"] in ("NEW", "CONFIRMED")
    assert len(bugzilla_server.comments(bug_id)) == 1  # refused requests change nothing
    answer = bz.update_bugs(bug_id, bz.build_update(status="RESOLVED", resolution="FIXED"))
    changes = answer["bugs"][0]["changes"]
    assert changes["status"]["added"] == "RESOLVED"
    assert changes["resolution"] == {"removed": "", "added": "FIXED"}
    bug = bugzilla_server.bug(bug_id)
    assert (bug["status"], bug["resolution"], bug["is_open"]) == ("RESOLVED", "FIXED", False)
    reopen = "REOPENED" if bugzilla_server.mode == "bmo" else "CONFIRMED"
    bz.update_bugs([bug_id], {"status": reopen})
    assert bugzilla_server.bug(bug_id)["resolution"] == ""


def test_needinfo_flags(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)

    def ask(who: str, new: bool = True) -> dict:
        flag = {"name": "needinfo", "status": "?", "requestee": who}
        if new:
            flag["new"] = True
        return bz.update_bugs([bug_id], bz.build_update(flags=[flag]))

    answer = ask("engineer@mozilla.com")
    assert answer["bugs"][0]["changes"]["flagtypes.name"] == {
        "removed": "",
        "added": "needinfo?(engineer@mozilla.com)",
    }
    ask("manager@mozilla.com")
    assert bugzilla_server.needinfos(bug_id) == ["engineer@mozilla.com", "manager@mozilla.com"]
    flags = bugzilla_server.flags(bug_id)
    assert len({f["id"] for f in flags}) == 2 and all(f["type_id"] == 800 for f in flags)
    with pytest.raises(BugzillaError) as excinfo:
        ask("requester@mozilla.com", new=False)
    assert code_of(excinfo) == 132
    with pytest.raises(BugzillaError) as excinfo:
        ask("ghost@example.com")
    assert code_of(excinfo) == 51
    assert len(bugzilla_server.flags(bug_id)) == 2
    bz.update_bugs([bug_id], {"flags": [{"id": flags[0]["id"], "status": "X"}]})
    assert bugzilla_server.needinfos(bug_id) == ["manager@mozilla.com"]
    # Without `new` and with exactly one flag set, that flag (and its requestee) is replaced.
    ask("requester@mozilla.com", new=False)
    assert bugzilla_server.needinfos(bug_id) == ["requester@mozilla.com"]
    bz.update_bugs([bug_id], {"flags": [{"type_id": 800, "status": "X"}]})
    assert bugzilla_server.flags(bug_id) == []


def test_acting_as_another_user(bugzilla_server):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    bz.update_bugs(
        [bug_id],
        bz.build_update(
            comment="Please agree",
            flags=[
                {"name": "needinfo", "status": "?", "requestee": who, "new": True}
                for who in ("requester@mozilla.com", "manager@mozilla.com")
            ],
        ),
    )
    bugzilla_server.act_as("requester@mozilla.com").comment(bug_id, "I agree.\nThanks")
    assert bugzilla_server.needinfos(bug_id) == ["manager@mozilla.com"]
    assert bugzilla_server.comments(bug_id)[-1]["creator"] == "requester@mozilla.com"
    # Through HTTP with the manager's own key.
    manager = connect(bugzilla_server, key=SEED_USERS["manager@mozilla.com"])
    flag_id = bugzilla_server.flags(bug_id)[0]["id"]
    manager.update_bugs(
        [bug_id], manager.build_update(comment="Confirmed", flags=[{"id": flag_id, "status": "X"}])
    )
    assert bugzilla_server.needinfos(bug_id) == []
    assert bugzilla_server.comments(bug_id)[-1]["creator"] == "manager@mozilla.com"
    history = bz.bugs_history_raw([bug_id])["bugs"][0]["history"]
    cleared = [
        (h["who"], c["removed"])
        for h in history
        for c in h["changes"]
        if c["field_name"] == "flagtypes.name" and not c["added"]
    ]
    assert cleared == [
        ("requester@mozilla.com", "needinfo?(requester@mozilla.com)"),
        ("manager@mozilla.com", "needinfo?(manager@mozilla.com)"),
    ]


def test_bmo_comment_clears_own_needinfo(fake_bugzilla, fake_bugzilla_upstream):
    for server in (fake_bugzilla, fake_bugzilla_upstream):
        bug_id = server.add_bug(summary="s")
        server.act_as(RELENG).update(
            bug_id,
            flags=[{"name": "needinfo", "status": "?", "requestee": "engineer@mozilla.com"}],
        )
        server.act_as("engineer@mozilla.com").comment(bug_id, "answer", clear_needinfo=False)
        expected = [] if server.mode == "bmo" else ["engineer@mozilla.com"]
        assert server.needinfos(bug_id) == expected


def test_users_whoami_valid_login(bugzilla_server):
    bz = connect(bugzilla_server)
    assert bz.logged_in is True
    user = bz.getuser("engineer@mozilla.com")
    assert user.email == "engineer@mozilla.com"
    with pytest.raises(BugzillaError) as excinfo:
        bz.getuser("ghost@example.com")
    assert code_of(excinfo) == 51
    anonymous = connect(bugzilla_server, key=None)
    assert anonymous.logged_in is False
    assert "email" not in anonymous._backend.user_get({"names": [RELENG]})["users"][0]
    answer = bz._backend._get("/valid_login", {"login": RELENG})
    assert answer == {"result": True}
    assert bz._backend._get("/valid_login", {"login": "x@y.z"}) == {"result": False}
    if bugzilla_server.mode == "bmo":
        assert bz._backend._get("/whoami")["name"] == RELENG
        with pytest.raises(BugzillaError) as excinfo:
            anonymous._backend._get("/whoami")
        assert code_of(excinfo) == 410
    else:
        with pytest.raises(BugzillaError) as excinfo:
            bz._backend._get("/whoami")
        assert code_of(excinfo) == 32614


def test_fault_injection(bugzilla_server, monkeypatch):
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    bugzilla_server.add_fault(f"/rest/bug/{bug_id}", method="GET", status=500)
    with pytest.raises(BugzillaHTTPError) as excinfo:
        bz.getbug(bug_id)
    assert excinfo.value.response.status_code == 500
    assert bz.getbug(bug_id).bug_id == bug_id  # count=1: the next request is served
    bugzilla_server.add_fault(
        "/rest/bug*", status=502, body="<html>Bad Gateway</html>", content_type="text/html"
    )
    with pytest.raises(BugzillaHTTPError) as excinfo:
        bz.getbug(bug_id)
    assert excinfo.value.response.text == "<html>Bad Gateway</html>"
    monkeypatch.setenv("PYTHONBUGZILLA_REQUESTS_TIMEOUT", "0.3")
    fault = bugzilla_server.add_fault("/rest/bug/*", status=None, delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        bz.getbug(bug_id)
    assert fault.hits == 1


def test_direct_seeding_and_plain_http(fake_bugzilla):
    bug_id = fake_bugzilla.add_bug(
        summary="PII access for requester", assigned_to="engineer@mozilla.com"
    )
    with urllib.request.urlopen(f"{fake_bugzilla.url}bug/{bug_id}", timeout=10) as answer:
        assert answer.headers["Content-Length"]
        data = json.loads(answer.read())
    assert data["bugs"][0]["assigned_to"] == "engineer@mozilla.com"
    assert data["faults"] == []


def test_a_disabled_requestee_and_permissive_user_lookup(bugzilla_server):
    """BMO refuses a needinfo of a disabled account (flag_requestee_disabled, 32000 / HTTP 400);
    GET /user with permissive=1 lists unknown names in `faults` instead of failing."""
    bugzilla_server.add_user("gone@mozilla.com", can_login=False)
    bz = connect(bugzilla_server)
    bug_id = new_bug(bz, bugzilla_server)
    flag = {"name": "needinfo", "status": "?", "requestee": "gone@mozilla.com", "new": True}
    with pytest.raises(BugzillaError) as excinfo:
        bz.update_bugs([bug_id], bz.build_update(flags=[flag]))
    assert BugzillaError.get_bugzilla_error_code(excinfo.value) == 32000
    assert "because that account is disabled" in str(excinfo.value)
    assert bugzilla_server.needinfos(bug_id) == []

    answer = bz._backend.user_get({"names": ["gone@mozilla.com", "who@x.test"], "permissive": 1})
    assert [(u["name"], u["can_login"]) for u in answer["users"]] == [("gone@mozilla.com", False)]
    assert [(f["name"], f["faultCode"]) for f in answer["faults"]] == [("who@x.test", 51)]
    with pytest.raises(BugzillaError):
        bz._backend.user_get({"names": ["who@x.test"]})
