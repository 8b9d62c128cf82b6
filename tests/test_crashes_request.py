"""crashes.request-reprocessing: a bug on the fake Bugzilla, counted on the fake Super Search."""

from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.fake_bugzilla import RELENG, SEED_USERS
from tests.fake_crashstats import GOOD_TOKEN, SIGNATURE

KEY = SEED_USERS[RELENG]


def search_url(fake, signature=SIGNATURE):
    return (
        f"{fake.url}/search/?signature={quote('=' + signature)}&product=Firefox"
        f"&date={quote('>=2026-11-01')}&date={quote('<2026-11-04')}&_facets=platform"
    )


def request(invoke, bugzilla, *args, key=KEY, extra=None):
    env = {"INVOKE_BUGZILLA_URL": bugzilla.url, "INVOKE_CRASHES_BACKOFF_BASE": "0.001"}
    if key:
        env["BUGZILLA_API_KEY"] = key
    env.update(extra or {})
    result = invoke("crashes.request-reprocessing", *args, extra_env=env)
    assert KEY not in result.stdout + result.stderr
    assert GOOD_TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_files_the_bug_with_url_count_and_reason(invoke, crashstats, bugzilla_server):
    fake_bugzilla = bugzilla_server  # BMO, then upstream Bugzilla 5.0 (no bug types)
    url = search_url(crashstats)
    result = request(invoke, fake_bugzilla, "--url", url, "--reason", "signature fixed in bug 42")
    assert result.returncode == 0, result.stderr
    bug_url = result.stdout.strip()
    bug_id = int(parse_qs(urlsplit(bug_url).query)["id"][0])
    assert bug_url == f"{fake_bugzilla.base}/show_bug.cgi?id={bug_id}"
    bug = fake_bugzilla.bug(bug_id)
    assert (bug["product"], bug["component"]) == ("Socorro", "General")
    if fake_bugzilla.mode == "bmo":
        assert bug["type"] == "task"
    assert bug["summary"] == "reprocess request: signature fixed in bug 42"
    text = fake_bugzilla.comments(bug_id)[0]["text"]
    assert url in text
    assert "Matching crash reports: 2,000 " in text  # Super Search's total
    assert "Reason: signature fixed in bug 42" in text
    assert "invoke crashes.fetch-ids --num all --url" in text
    assert "2,000 crash reports match" in result.stderr


def test_without_an_api_key_prints_the_prefilled_link(invoke, crashstats, fake_bugzilla):
    result = request(
        invoke, fake_bugzilla, "--url", search_url(crashstats), "--reason", "r", key=None
    )
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    assert link.startswith(f"{fake_bugzilla.base}/enter_bug.cgi?")
    params = parse_qs(urlsplit(link).query)
    assert params["product"] == ["Socorro"] and params["component"] == ["General"]
    assert params["bug_type"] == ["task"]
    assert params["short_desc"] == ["reprocess request: r"]
    assert "Matching crash reports: 2,000" in params["comment"][0]
    assert "no Bugzilla API key" in result.stderr
    assert fake_bugzilla.writes() == []


def test_dates_and_product_assumed_are_pinned_in_the_bug(invoke, crashstats, fake_bugzilla):
    dates = f"&date={quote('>=2026-11-01')}&date={quote('<2026-11-04')}"
    url = f"{crashstats.url}/search/?signature={quote('=' + SIGNATURE)}{dates}"
    result = request(invoke, fake_bugzilla, "--url", url, "--reason", "r", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "product=Firefox" in result.stdout and url in result.stdout
    assert "note: the URL does not say product; added to it: product=Firefox" in result.stderr
    assert fake_bugzilla.writes() == []


@pytest.mark.parametrize("key", [KEY, None])
def test_a_search_matching_nothing_files_nothing(invoke, crashstats, fake_bugzilla, key):
    # No product and no date in the URL: Firefox and yesterday are assumed, and the data set
    # has no crash yesterday. The note names the added filters; nothing is filed or linked.
    url = f"{crashstats.url}/search/?signature={quote('=' + SIGNATURE)}"
    result = request(invoke, fake_bugzilla, "--url", url, "--reason", "r", key=key)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "the search matches no crash reports" in result.stderr
    assert "note: the URL does not say product or date; added to it: product=Firefox " in (
        result.stderr
    )
    assert "date=>=" in result.stderr and "date=<" in result.stderr
    assert fake_bugzilla.writes() == []
    assert [e.path for e in crashstats.log] == ["/api/SuperSearch/"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--reason", "r"), "--url is required"),
        (
            ("--url", "https://crash-stats.mozilla.org/search/?product=Firefox"),
            "--reason is required",
        ),
        (("--url", "search?product=Firefox", "--reason", "r"), "must be"),
    ],
)
def test_bad_input_files_nothing(invoke, fake_bugzilla, args, message):
    result = request(invoke, fake_bugzilla, *args)
    assert result.returncode == 1 and message in result.stderr
    assert fake_bugzilla.writes() == []


def test_dry_run_files_nothing_and_shows_the_request(invoke, crashstats, fake_bugzilla):
    result = invoke(
        "--dry",
        "crashes.request-reprocessing",
        "--url",
        search_url(crashstats),
        "--reason",
        "why",
        extra_env={"INVOKE_BUGZILLA_URL": fake_bugzilla.url, "BUGZILLA_API_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    assert "would send: POST" in result.stderr and "reprocess request: why" in result.stderr
    assert "dry run: nothing was filed in Socorro :: General" in result.stderr
    assert "Reason: why" in result.stdout
    assert fake_bugzilla.writes() == []


def test_rerun_reuses_the_open_request_bug(invoke, crashstats, fake_bugzilla):
    first = request(invoke, fake_bugzilla, "--url", search_url(crashstats), "--reason", "again")
    assert first.returncode == 0, first.stderr
    second = request(invoke, fake_bugzilla, "--url", search_url(crashstats), "--reason", "again")
    assert second.returncode == 0, second.stderr
    assert "not filing it again" in second.stderr
    assert second.stdout == first.stdout  # the same bug URL
    filed = [b for b in fake_bugzilla.bugs.values() if b["summary"] == "reprocess request: again"]
    assert len(filed) == 1


def test_summary_is_cut_to_bugzillas_limit_and_url_pinning():
    from lib.reprocess_request import pinned_url, summary_for

    long_reason = "word " * 100
    summary = summary_for(long_reason)
    assert len(summary) <= 255 and summary.startswith("reprocess request: word word")
    url = "https://cs/search/?signature=%3Dx"
    pinned = pinned_url(url, ["Firefox"], "2026-11-01", "2026-11-02")
    assert pinned.startswith(url + "&")
    assert "product=Firefox" in pinned and "date=%3E%3D2026-11-01" in pinned
    full = "https://cs/search/?product=Fenix&date=%3E%3D2026-10-01"
    assert pinned_url(full, ["Fenix"], "a", "b") == full


@pytest.fixture
def other_crashstats():
    """A second Crash Stats host: the one a pasted link names, not the configured one."""
    from tests.fake_crashstats import FakeCrashStats, dataset

    fake = FakeCrashStats(crashes=dataset(2_000)).start()
    yield fake
    fake.stop()


def sent_token(fake):
    return [e for e in fake.log if any(k.lower() == "auth-token" for k in e.headers)]


@pytest.mark.parametrize("dry", [False, True])
def test_the_token_never_goes_to_the_host_of_a_pasted_url(
    invoke, crashstats, other_crashstats, fake_bugzilla, crashstats_env, dry
):
    env = {**crashstats_env, "INVOKE_CRASHES_HOST": crashstats.url}
    args = ("--url", search_url(other_crashstats), "--reason", "leak?")
    result = request(invoke, fake_bugzilla, *args, *(["--dry-run"] if dry else []), extra=env)
    assert result.returncode == 0, result.stderr
    assert "2,000 crash reports match" in result.stderr  # counted anonymously
    assert other_crashstats.log and sent_token(other_crashstats) == []
    assert sent_token(crashstats) == []
