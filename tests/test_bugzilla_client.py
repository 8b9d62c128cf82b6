"""lib.bugzilla against the fake Bugzilla, in BMO and upstream 5.0 modes."""

from __future__ import annotations

import logging
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from lib.bugzilla import (
    BugzillaClient,
    api_key_from_environment,
    enter_bug_url,
    public_url,
    rest_base,
)
from lib.errors import UserError
from tests.fake_bugzilla import RELENG, SEED_USERS, FakeBugzilla

KEY = SEED_USERS[RELENG]


def client(server: FakeBugzilla, key: str | None = KEY, **kwargs) -> BugzillaClient:
    return BugzillaClient(server.url, key, **kwargs)


def file_bug(bz: BugzillaClient, **fields) -> int:
    data = {
        "product": "Socorro",
        "component": "Infra",
        "summary": "socorro deploy: 101",
        "description": "Deploy tag 101.",
    }
    data.update(fields)
    return bz.create_bug(**data)


def assert_key_never_in_url(server: FakeBugzilla) -> None:
    assert server.journal, "no request reached the server"
    assert not any(entry.key_in_url for entry in server.journal)


# ------------------------------------------------------------------ create
def test_create_on_bmo_sends_type_by_header(fake_bugzilla):
    bz = client(fake_bugzilla)
    bug_id = file_bug(bz, priority="P2", assignee="engineer@mozilla.com")
    bug = fake_bugzilla.bug(bug_id)
    assert bug["type"] == "task"
    assert (bug["product"], bug["component"], bug["summary"]) == (
        "Socorro",
        "Infra",
        "socorro deploy: 101",
    )
    assert bug["priority"] == "P2" and bug["assigned_to"] == "engineer@mozilla.com"
    assert bug["status"] == "NEW"
    assert fake_bugzilla.comments(bug_id)[0]["text"] == "Deploy tag 101."
    post = fake_bugzilla.requests("POST", "/rest/bug")[0]
    assert post.body["type"] == "task" and "version" not in post.body
    assert bz.auth_used == "header"
    assert {entry.auth for entry in fake_bugzilla.journal} == {"header"}
    assert_key_never_in_url(fake_bugzilla)


def test_create_on_upstream_sends_version_and_no_type(fake_bugzilla_upstream):
    server = fake_bugzilla_upstream
    bz = client(server)
    bug_id = file_bug(bz, assignee="engineer@mozilla.com")
    bug = server.bug(bug_id)
    assert "type" not in bug and bug["version"] == "unspecified"
    assert bug["status"] == "CONFIRMED" and bug["assigned_to"] == "engineer@mozilla.com"
    post = server.requests("POST", "/rest/bug")[0]
    assert "type" not in post.body and post.body["version"] == "unspecified"
    # The header was tried, ignored by the server, and the client fell back to the parameter.
    assert bz.auth_used == "param"
    assert post.auth == "body:Bugzilla_api_key" and post.user == RELENG
    assert not bz.has_bug_types and bz.whoami() is None


def test_create_recovers_when_server_disagrees_about_types(fake_bugzilla_upstream):
    server = fake_bugzilla_upstream
    server.version = "20260820.1"  # looks like BMO, behaves like upstream: answers 53
    bug_id = file_bug(client(server))
    assert "type" not in server.bug(bug_id)
    assert [e.status for e in server.requests("POST")] == [400, 200]


def test_create_on_stock_upstream_drops_an_unknown_priority(fake_bugzilla_upstream, capsys):
    """Stock upstream 5.0/5.2 priorities are Highest..Lowest/---: P2 is refused (code 51)."""
    server = fake_bugzilla_upstream
    assert "P2" not in server.priorities
    bug_id = file_bug(client(server), priority="P2", assignee="engineer@mozilla.com")
    bug = server.bug(bug_id)
    assert bug["priority"] == "---" and bug["assigned_to"] == "engineer@mozilla.com"
    assert bug["summary"] == "socorro deploy: 101"
    posts = server.requests("POST", "/rest/bug")
    assert [(e.status, e.body.get("priority")) for e in posts] == [(404, "P2"), (200, None)]
    err = capsys.readouterr().err
    assert err.strip() == (
        "note: this Bugzilla has no priority 'P2'; the bug gets the server's default priority"
    )
    # A priority the server knows is kept, with no note.
    bug_id = file_bug(client(server), priority="High")
    assert server.bug(bug_id)["priority"] == "High" and capsys.readouterr().err == ""
    # Other code-51 refusals are still errors, and nothing is retried for them.
    before = len(server.requests("POST"))
    message = error_of(lambda: file_bug(client(server), priority="P2", assignee="ghost@x.org"))
    assert message == "unknown Bugzilla user 'ghost@x.org' (code 51)"
    assert len(server.bugs) == 2 and len(server.requests("POST")) - before == 2


def test_create_bad_type_is_refused_before_sending(fake_bugzilla):
    with pytest.raises(UserError, match="bug type must be one of"):
        file_bug(client(fake_bugzilla), bug_type="chore")
    assert fake_bugzilla.writes() == []


# ------------------------------------------------------------------ reads
def test_find_bugs_exact_summary(bugzilla_server):
    bz = client(bugzilla_server)
    wanted = file_bug(bz)
    file_bug(bz, summary="socorro deploy: 1010")
    file_bug(bz, summary="Socorro deploy: 101")
    file_bug(bz, product="Firefox", component="General")
    assert [b["id"] for b in bz.find_bugs("Socorro", "socorro deploy: 101")] == [wanted]
    bz.resolve_fixed(wanted, "Deployed.")
    found = bz.find_bugs("Socorro", "socorro deploy: 101")
    assert [(b["id"], b["status"], b["is_open"]) for b in found] == [(wanted, "RESOLVED", False)]
    assert bz.find_bugs("Socorro", "socorro deploy: 101", open_only=True) == []
    assert bz.find_bugs("Socorro", "socorro deploy: 102") == []


def test_get_bug_and_bugs(bugzilla_server):
    bz = client(bugzilla_server)
    first, second = file_bug(bz), file_bug(bz, summary="other")
    bug = bz.get_bug(first)
    assert bug["id"] == first and bug["summary"] == "socorro deploy: 101"
    assert bug["is_open"] is True and bug["resolution"] == "" and bug["flags"] == []
    assert bug["url"] == f"{bugzilla_server.base}/show_bug.cgi?id={first}"
    assert [b["id"] for b in bz.get_bugs([second, first, 42, first])] == [first, second]
    assert bz.get_bugs([]) == []


def test_get_many_bugs_in_chunks(fake_bugzilla):
    ids = [fake_bugzilla.add_bug(summary=f"bug {n}") for n in range(1000)]
    bz = client(fake_bugzilla)
    assert [b["id"] for b in bz.get_bugs(reversed(ids))] == ids
    searches = fake_bugzilla.requests("GET", "/rest/bug")
    assert len(searches) == 5 and all(e.status == 200 for e in searches)


def test_long_request_target_gets_plain_414(fake_bugzilla):
    bz = client(fake_bugzilla)
    message = error_of(lambda: bz.find_bugs("Socorro", "x" * 9000))
    assert "answered HTTP 414" in message


def test_whoami_and_users(bugzilla_server):
    bz = client(bugzilla_server)
    expected = RELENG if bugzilla_server.mode == "bmo" else None
    assert bz.whoami() == expected
    assert client(bugzilla_server, key=None).whoami() is None
    assert bz.is_key_of(RELENG) is True
    assert bz.is_key_of("manager@mozilla.com") is False
    assert client(bugzilla_server, key=None).is_key_of(RELENG) is False
    assert bz.user_exists("manager@mozilla.com") is True
    assert bz.user_exists("ghost@example.com") is False
    assert bz.has_bug_types is (bugzilla_server.mode == "bmo")


# ------------------------------------------------------------------ comments and flags
def test_comment_with_needinfos_in_one_request(bugzilla_server):
    bz = client(bugzilla_server)
    bug_id = file_bug(bz)
    bz.add_comment(bug_id, "Please verify on stage.", needinfo=["engineer@mozilla.com"])
    bz.add_comment(
        bug_id, "And you too.", needinfo=["manager@mozilla.com", "requester@mozilla.com"]
    )
    puts = bugzilla_server.requests("PUT")
    assert len(puts) == 2
    assert puts[1].body["flags"] == [
        {"name": "needinfo", "status": "?", "requestee": who, "new": True}
        for who in ("manager@mozilla.com", "requester@mozilla.com")
    ]
    # The second request did not overwrite the first one.
    assert bugzilla_server.needinfos(bug_id) == [
        "engineer@mozilla.com",
        "manager@mozilla.com",
        "requester@mozilla.com",
    ]
    texts = [c["text"] for c in bz.comments(bug_id)]
    assert texts == ["Deploy tag 101.", "Please verify on stage.", "And you too."]
    markdown = [c["is_markdown"] for c in bugzilla_server.comments(bug_id)[1:]]
    assert markdown == [bugzilla_server.mode == "bmo"] * 2


def test_clear_needinfo(bugzilla_server):
    bz = client(bugzilla_server)
    bug_id = file_bug(bz)
    bz.add_comment(bug_id, "?", needinfo=["engineer@mozilla.com", "manager@mozilla.com"])
    assert bz.clear_needinfo(bug_id, "manager@mozilla.com") == 1
    assert bugzilla_server.needinfos(bug_id) == ["engineer@mozilla.com"]
    assert bz.clear_needinfo(bug_id, "manager@mozilla.com") == 0
    assert len(bugzilla_server.requests("PUT")) == 2


def test_resolve_fixed_never_closed(bugzilla_server):
    bz = client(bugzilla_server)
    bug_id = file_bug(bz)
    bz.resolve_fixed(bug_id, "Deployed to production.")
    bug = bugzilla_server.bug(bug_id)
    assert (bug["status"], bug["resolution"]) == ("RESOLVED", "FIXED")
    assert bugzilla_server.comments(bug_id)[-1]["text"] == "Deployed to production."
    put = bugzilla_server.requests("PUT")[0]
    assert put.body["status"] == "RESOLVED" and put.body["resolution"] == "FIXED"


def test_comment_too_long_is_refused_before_sending(fake_bugzilla):
    bz = client(fake_bugzilla)
    bug_id = fake_bugzilla.add_bug(summary="s")
    with pytest.raises(UserError, match="at most 65,535"):
        bz.add_comment(bug_id, "x" * 65536)
    assert fake_bugzilla.writes() == []


# ------------------------------------------------------------------ errors
def error_of(call) -> str:
    with pytest.raises(UserError) as excinfo:
        call()
    message = str(excinfo.value)
    assert "\n" not in message and KEY not in message
    assert excinfo.value.code == 1
    return message


def test_unreachable_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    bz = BugzillaClient(f"http://127.0.0.1:{port}/rest/", KEY)
    message = error_of(lambda: bz.get_bug(1))
    assert message.startswith(f"cannot reach Bugzilla at http://127.0.0.1:{port}")


def test_timeout(bugzilla_server):
    bugzilla_server.add_fault("/rest/version", status=None, delay=1.5)
    bz = client(bugzilla_server, timeout=0.3)
    message = error_of(lambda: bz.get_bug(1))
    assert "did not answer within 0.3 seconds" in message


def test_timeout_after_a_write_says_it_may_have_been_applied(bugzilla_server):
    import time

    server = bugzilla_server
    bug_id = server.add_bug(summary="s")
    bz = client(server, timeout=0.3)
    bz.get_bug(bug_id)
    server.add_fault(f"/rest/bug/{bug_id}", method="PUT", status=None, delay=1.0)
    message = error_of(lambda: bz.add_comment(bug_id, "Deployed."))
    assert message.startswith(f"Bugzilla at {server.base} did not answer within 0.3 seconds")
    assert "to a PUT that files or changes a bug: the change may or may not" in message
    assert "rerunning is safe, since each task checks the bug before changing it" in message
    assert "nothing more was sent" not in message
    for _ in range(50):  # the server applies it once its delay is over
        if len(server.comments(bug_id)) == 2:
            break
        time.sleep(0.1)
    assert server.comments(bug_id)[-1]["text"] == "Deployed."
    # A read that times out says so, and nothing about changes.
    server.add_fault(f"/rest/bug/{bug_id}", method="GET", status=None, delay=1.0)
    message = error_of(lambda: bz.get_bug(bug_id))
    assert "0.3 seconds (bugzilla.timeout) to a read request; try again" in message


def test_invalid_key(bugzilla_server):
    bz = client(bugzilla_server, key="revoked-key-123")
    assert error_of(lambda: bz.get_bug(1)).startswith("the Bugzilla API key is invalid (code 306)")
    assert not any(e.key_in_url for e in bugzilla_server.requests() if e.auth == "header")


def test_login_required(bugzilla_server):
    bz = client(bugzilla_server, key=None)
    message = error_of(lambda: file_bug(bz))
    assert "requires a login" in message and "(code 410)" in message
    assert bugzilla_server.bugs == {}


def test_header_only_on_upstream_is_anonymous(fake_bugzilla_upstream):
    bz = client(fake_bugzilla_upstream, auth="header")
    message = error_of(lambda: file_bug(bz))
    assert "(code 410)" in message and "set bugzilla.auth to auto or param" in message


def test_param_auth_when_configured(fake_bugzilla):
    bz = client(fake_bugzilla, auth="param")
    file_bug(bz)
    forms = {e.method: e.auth for e in fake_bugzilla.journal}
    assert forms == {"GET": "query:Bugzilla_api_key", "POST": "body:Bugzilla_api_key"}


def test_unknown_product_component_user(bugzilla_server):
    bz = client(bugzilla_server)
    assert error_of(lambda: file_bug(bz, product="Sorocco")).startswith(
        "unknown Bugzilla product 'Sorocco'"
    )
    assert error_of(lambda: file_bug(bz, component="Infar")) == (
        "unknown component 'Infar' in Bugzilla product 'Socorro' (code 105)"
    )
    assert error_of(lambda: file_bug(bz, assignee="ghost@example.com")) == (
        "unknown Bugzilla user 'ghost@example.com' (code 51)"
    )
    bug_id = bugzilla_server.add_bug(summary="s")
    assert error_of(lambda: bz.add_comment(bug_id, "x", needinfo=["nobody@example.net"])) == (
        "unknown Bugzilla user 'nobody@example.net' (code 51)"
    )
    assert error_of(lambda: bz.get_bug(4242)) == "Bugzilla bug 4242 does not exist (code 101)"
    assert len(bugzilla_server.bugs) == 1 and len(bugzilla_server.comments(bug_id)) == 1


def test_server_errors(bugzilla_server):
    bz = client(bugzilla_server)
    bug_id = bugzilla_server.add_bug(summary="s")
    bz.get_bug(bug_id)
    bugzilla_server.add_fault("/rest/bug/*", status=500)
    message = error_of(lambda: bz.get_bug(bug_id))
    assert message.startswith(f"Bugzilla at {bugzilla_server.base} failed with HTTP 500")
    bugzilla_server.add_fault(
        "/rest/bug/*", status=502, body="<html>Bad Gateway</html>", content_type="text/html"
    )
    message = error_of(lambda: bz.add_comment(bug_id, "x"))
    assert "failed with HTTP 502" in message and "<html>" not in message
    bugzilla_server.add_fault(
        "/rest/bug/*",
        status=400,
        body={
            "error": True,
            "code": 32000,
            "message": 'User engineer@mozilla.com is not currently accepting "needinfo" requests.',
        },
    )
    message = error_of(lambda: bz.add_comment(bug_id, "x", needinfo=["engineer@mozilla.com"]))
    assert message == (
        "Bugzilla refused the request: User engineer@mozilla.com is not currently accepting "
        '"needinfo" requests. (code 32000)'
    )
    bugzilla_server.add_fault(
        "/rest/bug/*", status=414, body="URI Too Long", content_type="text/plain"
    )
    assert "answered HTTP 414" in error_of(lambda: bz.get_bug(bug_id))


def test_wrong_url_is_explained(fake_bugzilla):
    bz = BugzillaClient(fake_bugzilla.base + "/nothing/here/rest/", KEY)
    message = error_of(lambda: bz.get_bug(1))
    assert "code 32614" in message or "HTTP 404" in message
    with pytest.raises(UserError, match="bugzilla.url must be an http"):
        BugzillaClient("bugzilla.mozilla.org", KEY)
    with pytest.raises(UserError, match="bugzilla.auth must be one of"):
        BugzillaClient(fake_bugzilla.url, KEY, auth="cookie")


def test_key_never_logged_even_as_parameter(fake_bugzilla_upstream, caplog):
    caplog.set_level(logging.DEBUG)
    bz = client(fake_bugzilla_upstream)
    bug_id = file_bug(bz)
    bz.add_comment(bug_id, "hello", needinfo=["engineer@mozilla.com"])
    assert any(e.key_in_url for e in fake_bugzilla_upstream.journal)  # upstream needs the param
    assert "Bugzilla_api_key" in caplog.text  # urllib3 logged the request lines...
    assert KEY not in caplog.text  # ...with the key masked


def test_param_mode_sends_the_key_of_writes_in_the_body(fake_bugzilla_upstream):
    """Upstream 5.0/5.2 take the key only as a parameter: a write carries it in the body."""
    bz = client(fake_bugzilla_upstream)
    bug_id = file_bug(bz)
    bz.add_comment(bug_id, "hello", needinfo=["engineer@mozilla.com"])
    writes = [e for e in fake_bugzilla_upstream.journal if e.method in ("POST", "PUT")]
    reads = [e for e in fake_bugzilla_upstream.journal if e.method == "GET"]
    assert {e.method for e in writes} == {"POST", "PUT"}
    assert all(e.auth == "body:Bugzilla_api_key" and not e.key_in_url for e in writes)
    assert all(e.status < 400 for e in writes)
    assert any(e.auth == "query:Bugzilla_api_key" for e in reads)  # a read has no body
    assert fake_bugzilla_upstream.bug(bug_id)["creator"] == "releng@mozilla.com"
    assert fake_bugzilla_upstream.comments(bug_id)[-1]["creator"] == "releng@mozilla.com"


def test_header_mode_keeps_key_out_of_logs(fake_bugzilla, caplog):
    caplog.set_level(logging.DEBUG)
    bz = client(fake_bugzilla)
    file_bug(bz)
    assert KEY not in caplog.text and "Bugzilla_api_key" not in caplog.text
    assert_key_never_in_url(fake_bugzilla)


# ------------------------------------------------------------------ dry run
def test_dry_run_sends_no_write(bugzilla_server, capsys):
    bz = client(bugzilla_server, dry_run=True)
    bug_id = bugzilla_server.add_bug(summary="s")
    assert file_bug(bz) == 0
    bz.add_comment(bug_id, "Please verify.", needinfo=["engineer@mozilla.com"])
    bz.resolve_fixed(bug_id, "done")
    assert bugzilla_server.writes() == []
    assert bugzilla_server.bug(bug_id)["status"] in ("NEW", "CONFIRMED")
    err = capsys.readouterr().err
    assert f"dry-run: would send: POST {bugzilla_server.url}bug" in err
    assert f"dry-run: would send: PUT {bugzilla_server.url}bug/{bug_id}" in err
    assert '"requestee": "engineer@mozilla.com"' in err and '"resolution": "FIXED"' in err
    assert KEY not in err


# ------------------------------------------------------------------ user:password in the URL
def with_login(url: str, login: str = "me:s3cr%40t") -> str:
    return url.replace("http://", f"http://{login}@", 1)


def test_url_credentials_are_sent_as_basic_auth_never_printed(bugzilla_server, capsys):
    import base64

    server = bugzilla_server
    bz = BugzillaClient(with_login(server.url), KEY)
    assert bz.url == server.url and bz.web_url == server.base
    bug_id = file_bug(bz)
    assert bz.bug_url(bug_id) == f"{server.base}/show_bug.cgi?id={bug_id}"
    assert bz.get_bug(bug_id)["url"] == bz.bug_url(bug_id)
    basic = "Basic " + base64.b64encode(b"me:s3cr@t").decode()
    assert {e.headers.get("Authorization") for e in server.journal} == {basic}
    assert all("s3cr" not in e.target for e in server.journal)

    # Errors: server failure, refusal, timeout, unreachable.
    server.add_fault("/rest/bug/*", status=500)
    server.add_fault("/rest/bug/*", method="PUT", status=None, delay=1.0)
    server.add_fault("/rest/bug/*", status=404, body="no such page", content_type="text/plain")
    messages = [
        error_of(lambda: bz.get_bug(bug_id)),
        error_of(
            lambda: BugzillaClient(with_login(server.url), KEY, timeout=0.3).add_comment(
                bug_id, "x"
            )
        ),
        error_of(lambda: bz.get_bug(bug_id)),
        error_of(lambda: bz.get_bug(4242)),
    ]
    server.stop()
    messages.append(error_of(lambda: BugzillaClient(with_login(server.url), KEY).get_bug(1)))
    messages.append(error_of(lambda: BugzillaClient("ftp://me:s3cr%40t@x/", KEY)))
    for message in messages:
        assert "s3cr" not in message and "me:" not in message, message
    assert messages[0].startswith(f"Bugzilla at {server.base} failed with HTTP 500")

    # Dry runs and links.
    dry = BugzillaClient(with_login(server.url), KEY, dry_run=True)
    dry.update_bug(bug_id, {"comment": {"comment": "x"}})
    assert "s3cr" not in capsys.readouterr().err
    link = enter_bug_url(
        with_login(server.url), product="Socorro", component="Infra", summary="s", description="d"
    )
    assert link.startswith(f"{server.base}/enter_bug.cgi?")
    assert public_url("https://u:p@bugzilla.example/rest/") == "https://bugzilla.example/rest/"


def test_dry_run_prints_each_read_and_sends_no_write(bugzilla_server, capsys):
    server = bugzilla_server
    bug_id = server.add_bug(summary="s")
    bz = client(server, dry_run=True)
    assert bz.get_bug(bug_id)["id"] == bug_id
    assert bz.comments(bug_id)[0]["count"] == 0
    bz.add_comment(bug_id, "hi", needinfo=["engineer@mozilla.com"])
    err = capsys.readouterr().err
    reads = [line for line in err.splitlines() if line.startswith("dry-run: runs: ")]
    assert len(reads) == len(server.journal) and server.writes() == []
    for line, entry in zip(reads, server.journal, strict=True):
        method, url = line.removeprefix("dry-run: runs: ").split(" ")
        assert (method, urlsplit(url).path) == (entry.method, entry.path)
    assert f"dry-run: runs: GET {server.url}bug/{bug_id}" in err
    assert f"dry-run: runs: GET {server.url}bug/{bug_id}/comment" in err
    assert "dry-run: would send: PUT" in err and KEY not in err
    # Nothing but a read can pass the client's session in a dry run.
    backend = bz._connect()._backend
    with pytest.raises(UserError, match="a dry run must not send POST"):
        bz._guard(lambda: backend._post("/bug", {"summary": "x"}))
    assert server.writes() == []


# ------------------------------------------------------------------ helpers
def test_api_key_from_environment(home, monkeypatch):
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("BUGZILLA_API_KEY", raising=False)
    url = "http://127.0.0.1:18765/rest/"
    assert api_key_from_environment(url) is None
    (home / ".bugzillarc").write_text("[127.0.0.1:18765]\napi_key = from-home-rc\n")
    assert api_key_from_environment(url) == "from-home-rc"
    assert api_key_from_environment("http://127.0.0.1:9/rest/") is None
    config = home / ".config" / "python-bugzilla"
    config.mkdir(parents=True)
    (config / "bugzillarc").write_text(
        "[bugzilla.mozilla.org]\napi_key = bmo-key\n[127.0.0.1:18765]\napi_key = from-config\n"
    )
    assert api_key_from_environment(url) == "from-config"
    assert api_key_from_environment("https://bugzilla.mozilla.org/rest/") == "bmo-key"
    monkeypatch.setenv("BUGZILLA_API_KEY", "from-env")
    assert api_key_from_environment(url) == "from-env"
    monkeypatch.delenv("BUGZILLA_API_KEY")
    (config / "bugzillarc").write_text("this is not ini\n")
    with pytest.raises(UserError, match="cannot read .*bugzillarc"):
        api_key_from_environment(url)


def test_enter_bug_url_and_bug_url():
    link = enter_bug_url(
        "https://bugzilla.mozilla.org/rest/",
        product="Socorro",
        component="Infra",
        summary="socorro deploy: 101",
        description="Deploy 101 & more\nline 2",
        priority="P2",
        assigned_to="dev@example.com",
    )
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "bugzilla.mozilla.org",
        "/enter_bug.cgi",
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "format": "__standard__",
        "product": "Socorro",
        "component": "Infra",
        "short_desc": "socorro deploy: 101",
        "comment": "Deploy 101 & more\nline 2",
        "bug_type": "task",
        "priority": "P2",
        "assigned_to": "dev@example.com",
    }
    bz = BugzillaClient("https://bugzilla.mozilla.org/rest/", None)
    assert bz.bug_url(123) == "https://bugzilla.mozilla.org/show_bug.cgi?id=123"
    assert rest_base("http://127.0.0.1:5/") == "http://127.0.0.1:5/rest/"
    assert rest_base("http://127.0.0.1:5/rest") == "http://127.0.0.1:5/rest/"


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_to_another_host_is_refused_and_the_key_stays_home(fake_bugzilla, status):
    """Regression: a redirect to another host received the X-BUGZILLA-API-KEY header (requests
    strips only Authorization), and a 307 would resend a write's body with the key."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    target = f"http://localhost:{fake_bugzilla.port}"  # another host name, same fake server

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        bz = BugzillaClient(f"http://127.0.0.1:{server.server_address[1]}/rest/", KEY)
        message = error_of(lambda: file_bug(bz))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert message.startswith("Bugzilla at http://127.0.0.1 redirected to another host")
    assert "http://localhost" in message and KEY not in message
    assert fake_bugzilla.journal == []  # nothing reached the other host


def test_a_late_bug_filing_is_named_as_such_in_one_second(bugzilla_server):
    """Regression: "within 1 seconds ... to a POST that changes the bug" for a new bug."""
    bugzilla_server.add_fault("/rest/bug", method="POST", status=None, delay=1.5)
    bz = client(bugzilla_server, timeout=1)
    message = error_of(
        lambda: bz.create_bug(product="Socorro", component="Infra", summary="late", description="d")
    )
    assert "did not answer within 1 second (bugzilla.timeout) to a POST that files or " in message
