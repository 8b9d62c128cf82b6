"""`invoke crashes.fetch-ids` end to end, and the query building behind it."""

import datetime as dt
import os
import subprocess
import sys
from urllib.parse import parse_qsl, quote

import pytest

from lib.errors import UserError
from lib.supersearch import build_query, date_window, parse_num
from tests.conftest import PROJECT_ROOT
from tests.fake_crashstats import GOOD_TOKEN, SIGNATURE, FakeCrashStats, dataset

NOW = dt.datetime(2026, 11, 5, 15, 30, tzinfo=dt.UTC)
WINDOW = ("--date", "2026-11-01..2026-11-03")


def fetch(invoke, fake, env, *args, **kwargs):
    return invoke("crashes.fetch-ids", "--host", fake.url, *args, extra_env=env, **kwargs)


def expected(fake, signature=SIGNATURE, product="Firefox"):
    return {c.uuid for c in fake.matching(product, signature)}


@pytest.fixture
def big_crashstats():
    """25,000 crashes match SIGNATURE (over 3 days), plus look-alikes that must not."""
    fake = FakeCrashStats(crashes=dataset(25_000), keep_bodies=False).start()
    yield fake
    fake.stop()


def test_25000_matching_crashes_come_back_complete(invoke, big_crashstats, crashstats_env):
    result = fetch(
        invoke, big_crashstats, crashstats_env, "--signature", SIGNATURE, "--num", "all", *WINDOW
    )
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert len(ids) == 25_000 == len(set(ids))
    assert set(ids) == expected(big_crashstats)
    assert "fetched 25,000 crash ids of 25,000 matching" in result.stderr
    assert "date window split" in result.stderr
    # Every request stayed inside Super Search's window (the fake answers 400 otherwise).
    searches = [dict(parse_qsl(e.query)) for e in big_crashstats.log]
    assert all(int(q["_results_offset"]) + int(q["_results_number"]) <= 10_000 for q in searches)
    assert all(e.status == 200 for e in big_crashstats.log)


def test_complete_despite_failing_requests(invoke, big_crashstats, crashstats_env):
    big_crashstats.fault_rate = 0.2
    big_crashstats.slow_seconds = 0.05
    result = fetch(
        invoke, big_crashstats, crashstats_env, "--signature", SIGNATURE, "--num", "all", *WINDOW
    )
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert len(ids) == len(set(ids)) and set(ids) == expected(big_crashstats)
    assert sum(big_crashstats.faults_injected.values()) > 0


def test_num_and_signature_contains(invoke, crashstats, crashstats_env):
    result = fetch(invoke, crashstats, crashstats_env, "--signature-contains", "some |", *WINDOW)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 100  # the default --num
    result = fetch(
        invoke,
        crashstats,
        crashstats_env,
        "--signature-contains",
        "some |",
        "--num",
        "all",
        *WINDOW,
    )
    wanted = expected(crashstats) | expected(crashstats, "some | signature | other")
    assert set(result.stdout.split()) == wanted and len(result.stdout.split()) == len(wanted)
    result = fetch(
        invoke, crashstats, crashstats_env, "--signature", SIGNATURE, "--num", "1500", *WINDOW
    )
    ids = result.stdout.split()
    assert len(ids) == len(set(ids)) == 1500 and set(ids) <= expected(crashstats)


def test_url_keeps_filters_and_drops_underscore_parameters(invoke, crashstats, crashstats_env):
    url = (
        "https://crash-stats.mozilla.org/search/?product=Fenix&date=%3E%3D2026-11-01"
        "&date=%3C2026-11-04&_columns=signature&_facets=platform&_sort=date&_results_number=3"
    )
    result = fetch(invoke, crashstats, crashstats_env, "--url", url, "--num", "all")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {c.uuid for c in crashstats.matching("Fenix")}
    query = parse_qsl(crashstats.log[-1].query)
    assert ("product", "Fenix") in query and ("_sort", "date") in query
    assert ("_columns", "uuid") in query and ("_facets", "platform") not in query
    assert ("date", ">=2026-11-01") in query and ("date", "<2026-11-04") in query


def test_product_all(invoke, crashstats, crashstats_env):
    result = fetch(invoke, crashstats, crashstats_env, "--product", "all", "--num", "all", *WINDOW)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == len(crashstats.crashes)
    assert all("product" not in q for q in (dict(parse_qsl(e.query)) for e in crashstats.log))


def test_token_is_sent_in_the_header_when_configured(invoke, crashstats, crashstats_env):
    result = fetch(invoke, crashstats, crashstats_env, "--num", "5", *WINDOW)
    assert result.returncode == 0, result.stderr
    assert crashstats.log and all(e.headers.get("Auth-Token") == GOOD_TOKEN for e in crashstats.log)
    assert GOOD_TOKEN not in crashstats.log_text() + result.stdout + result.stderr
    env = dict(crashstats_env, SOCORRO_REPROCESS_API_TOKEN="")
    crashstats.log.clear()
    result = fetch(invoke, crashstats, env, "--num", "5", *WINDOW)
    assert result.returncode == 0 and all("Auth-Token" not in e.headers for e in crashstats.log)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--num", "0"), "--num must be a positive whole number or 'all'"),
        (("--num", "lots"), "--num must be a positive whole number or 'all'"),
        (("--date", "last tuesday"), "--date must be YYYY-MM-DD"),
        (("--date", "2026-11-05..2026-11-01"), "the start must come before the end"),
        (("--url", "crash-stats/search"), "--url must be a Crash Stats search URL"),
        (("--signature", "a", "--signature-contains", "b"), "not both"),
    ],
)
def test_bad_input(invoke, crashstats, crashstats_env, args, message):
    result = fetch(invoke, crashstats, crashstats_env, *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_host(invoke, crashstats_env):
    result = invoke("crashes.fetch-ids", "--host", "nowhere", extra_env=crashstats_env)
    assert result.returncode == 1 and "--host must be an http(s) URL" in result.stderr


def test_server_error_is_reported_in_one_line(invoke, crashstats, crashstats_env):
    url = f"https://x/search/?date={quote('>=2026-11-01')}&product=Firefox"
    crashstats.fault_rate = 1.0
    crashstats.fault_kinds = ("500",)
    env = dict(crashstats_env, INVOKE_CRASHES_MAX_ATTEMPTS="2")
    result = fetch(invoke, crashstats, env, "--url", url)
    assert result.returncode == 1
    assert "Super Search kept failing" in result.stderr and "Traceback" not in result.stderr


def test_pipeline_into_reprocess_survives_kill_9(big_crashstats, crashstats_env, env):
    """The issue's "done when": fetch-ids --num all | reprocess --allow-many, killed, rerun."""
    full_env = {**env, **crashstats_env}
    base = [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT)]
    fetch_args = [
        *base,
        "crashes.fetch-ids",
        "--host",
        big_crashstats.url,
        "--signature",
        SIGNATURE,
        "--num",
        "all",
        *WINDOW,
    ]
    reprocess_args = [*base, "crashes.reprocess", "--host", big_crashstats.url, "--allow-many"]

    def pipeline():
        producer = subprocess.Popen(
            fetch_args, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        consumer = subprocess.Popen(
            reprocess_args,
            env=full_env,
            stdin=producer.stdout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        producer.stdout.close()
        return producer, consumer

    big_crashstats.hold_request = 250  # halfway through 500 chunks
    producer, consumer = pipeline()
    assert big_crashstats.holding.wait(timeout=120)
    consumer.kill()
    consumer.wait(timeout=30)
    producer.wait(timeout=30)
    big_crashstats.release.set()
    assert 249 * 50 <= big_crashstats.distinct_accepted <= 250 * 50
    big_crashstats.hold_request = None
    producer, consumer = pipeline()
    _, stderr = consumer.communicate(timeout=240)
    producer.wait(timeout=30)
    assert consumer.returncode == 0, stderr
    assert "resuming from" in stderr
    assert set(big_crashstats.accepted) == expected(big_crashstats)
    assert big_crashstats.resent <= 50


# --- query building (pure) -------------------------------------------------------------


def test_date_words():
    day = dt.timedelta(days=1)
    today = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    assert date_window("today", NOW) == (today, today + day)
    assert date_window("yesterday", NOW) == (today - day, today)
    assert date_window("thisweek", NOW) == (today - 7 * day, today + day)
    assert date_window("thismonth", NOW) == (today - 30 * day, today + day)
    assert date_window("2026-10-02", NOW) == (
        today.replace(month=10, day=2),
        today.replace(month=10, day=3),
    )
    start, end = date_window("2026-11-01T06:00:00..2026-11-02", NOW)
    assert (start.hour, end) == (6, dt.datetime(2026, 11, 3, tzinfo=dt.UTC))


def test_defaults_and_overrides():
    query = build_query(now=NOW)
    assert query.params == [("product", "Firefox")] and query.sort == "-date"
    assert query.end - query.start == dt.timedelta(days=1)
    query = build_query(
        url="https://h/search/?product=Thunderbird&signature=~foo",
        signature="exact",
        product="all",
        now=NOW,
    )
    assert query.params == [("signature", "=exact")]


def test_parse_num():
    assert parse_num(None) == 100 and parse_num("all") is None and parse_num("10,000") == 10_000
    with pytest.raises(UserError):
        parse_num("-5")


def test_rejected_token_is_a_one_line_error(invoke, crashstats, crashstats_env):
    env = dict(crashstats_env, SOCORRO_REPROCESS_API_TOKEN="not-a-known-token")
    result = fetch(invoke, crashstats, env, "--num", "5", *WINDOW)
    assert result.returncode == 1
    assert "Super Search refused the token (HTTP 403: Invalid API token)" in result.stderr
    assert "not-a-known-token" not in result.stderr + result.stdout


def test_rate_limited_search_is_waited_out(invoke, crashstats, crashstats_env):
    crashstats.rate_per_minute = 600  # 10/s, one at a time: the 2nd page is refused once
    crashstats.burst = 1
    crashstats.retry_after_whole_seconds = False
    result = fetch(
        invoke, crashstats, crashstats_env, "--signature", SIGNATURE, "--num", "all", *WINDOW
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == expected(crashstats)
    assert crashstats.rate_limited > 0


def test_url_on_another_host_is_noted_and_gets_no_token(invoke, crashstats, crashstats_env):
    other = FakeCrashStats(crashes=dataset(2_000)).start()
    try:
        url = f"{other.url}/search/?signature={quote('=' + SIGNATURE)}&product=Firefox"
        env = {**crashstats_env, "INVOKE_CRASHES_HOST": crashstats.url}
        result = invoke("crashes.fetch-ids", "--url", url, "--num", "5", *WINDOW, extra_env=env)
        assert result.returncode == 0, result.stderr
        assert f"note: --url names {other.url} but the search goes to {crashstats.url}" in (
            result.stderr
        )
        assert len(result.stdout.split()) == 5
        assert other.log == []  # the pasted link's host is never contacted, token or not
        assert GOOD_TOKEN not in result.stderr
    finally:
        other.stop()


def test_stops_fetching_once_the_reader_of_the_ids_is_gone(crashstats, crashstats_env, env):
    """`fetch-ids ... | head -1`: once the pipe's reader has gone, no further page is fetched
    (here the reader is gone before the first page; the run ends quietly with exit 0)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before fetch-ids writes anything
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "invoke",
                "--search-root",
                str(PROJECT_ROOT),
                "crashes.fetch-ids",
                "--host",
                crashstats.url,
                "--signature",
                SIGNATURE,
                "--num",
                "all",
                *WINDOW,
            ],
            env={**env, **crashstats_env},
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr and "Broken pipe" not in process.stderr
    assert crashstats.log == []  # not a single page fetched for nobody
