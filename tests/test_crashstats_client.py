"""The Crash Stats client against the fake server: retries, their bounds, errors, tokens."""

import email.utils
import time

import pytest

from lib.crashstats import (
    ApiError,
    CrashStatsClient,
    RetriesExhausted,
    RetryPolicy,
    find_token,
    require_token,
    retry_after_seconds,
)
from lib.errors import UserError
from tests.fake_crashstats import GOOD_TOKEN, READONLY_TOKEN

ID = "de1bb258-cbbf-4589-a673-34f800160918"


def make_client(fake, token=GOOD_TOKEN, **policy):
    sleeps = []
    settings = dict(max_attempts=6, max_wait=30, backoff_base=0.001, backoff_max=0.01, timeout=5)
    settings.update(policy)
    client = CrashStatsClient(fake.url, token, policy=RetryPolicy(**settings), sleep=sleeps.append)
    return client, sleeps


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds("0.25") == 0.25
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retry_after_seconds(header, now=now) <= 31


def test_post_is_retried_through_500s_and_drops(crashstats):
    crashstats.fault_rate = 1.0
    crashstats.fault_kinds = ("500", "drop")
    client, sleeps = make_client(crashstats, max_attempts=4)
    with pytest.raises(RetriesExhausted, match="giving up after 4 attempts"):
        client.post("/api/Reprocessing/", [("crash_ids", ID)])
    assert len(sleeps) == 3 and client.retries == 3
    assert crashstats.reprocess_requests == 0
    crashstats.fault_rate = 0.0
    assert client.post("/api/Reprocessing/", [("crash_ids", ID)]) is True
    assert crashstats.accepted[ID] == 1


def test_total_wait_is_bounded(crashstats):
    crashstats.fault_rate = 1.0
    crashstats.fault_kinds = ("500",)
    client, sleeps = make_client(
        crashstats, max_attempts=100, backoff_base=10, backoff_max=10, max_wait=25
    )
    client.rng.seed(1)
    with pytest.raises(RetriesExhausted, match="retry budget"):
        client.get("/api/SuperSearch/", {"_results_number": "0"})
    assert sum(sleeps) <= 25 and len(sleeps) < 100


def test_429_honours_retry_after(crashstats):
    crashstats.rate_per_minute = 600  # one request per 0.1 s
    crashstats.burst = 1
    crashstats.retry_after_whole_seconds = False
    client, sleeps = make_client(crashstats)
    client.sleep = lambda seconds: (sleeps.append(seconds), time.sleep(seconds))
    for _ in range(3):
        assert client.post("/api/Reprocessing/", [("crash_ids", ID)]) is True
    # Requests 2 and 3 were refused with Retry-After ~0.1 and waited that long (plus <1%).
    assert crashstats.rate_limited >= 2
    assert sleeps and all(0.0 < s <= 0.102 for s in sleeps)
    assert crashstats.accepted[ID] == 3


def test_400_and_403_are_not_retried(crashstats):
    client, sleeps = make_client(crashstats)
    with pytest.raises(ApiError) as error:
        client.post("/api/Reprocessing/", [("crash_ids", "nope")])
    assert error.value.status == 400 and "Crash id 'nope' is not valid." in error.value.message
    readonly, _ = make_client(crashstats, token=READONLY_TOKEN)
    with pytest.raises(ApiError) as error:
        readonly.post("/api/Reprocessing/", [("crash_ids", ID)])
    assert error.value.status == 403
    assert sleeps == [] and not crashstats.accepted


def test_token_only_in_the_header(crashstats):
    client, _ = make_client(crashstats)
    client.post("/api/Reprocessing/", [("crash_ids", ID)])
    client.get("/api/SuperSearch/", {"_results_number": "1"})
    for entry in crashstats.log:
        assert entry.headers.get("Auth-Token") == GOOD_TOKEN
        assert GOOD_TOKEN not in entry.query and GOOD_TOKEN not in entry.body


def test_token_lookup_order(tmp_path, monkeypatch):
    monkeypatch.delenv("SOCORRO_REPROCESS_API_TOKEN", raising=False)
    extra = tmp_path / "elsewhere.env"
    extra.write_text("SOCORRO_REPROCESS_API_TOKEN=from-extra\n")
    assert find_token(None, cwd=tmp_path) is None
    assert find_token(str(extra), cwd=tmp_path) == "from-extra"
    (tmp_path / ".env").write_text("SOCORRO_REPROCESS_API_TOKEN=from-dotenv\n")
    assert find_token(str(extra), cwd=tmp_path) == "from-dotenv"
    (tmp_path / "my.env").write_text("# comment\nSOCORRO_REPROCESS_API_TOKEN='from-myenv'\n")
    assert find_token(str(extra), cwd=tmp_path) == "from-myenv"
    monkeypatch.setenv("SOCORRO_REPROCESS_API_TOKEN", "from-environment")
    assert find_token(str(extra), cwd=tmp_path) == "from-environment"


def test_missing_token_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv("SOCORRO_REPROCESS_API_TOKEN", raising=False)
    with pytest.raises(UserError) as error:
        require_token(None, cwd=tmp_path)
    message = str(error.value)
    assert "SOCORRO_REPROCESS_API_TOKEN" in message and str(tmp_path / "my.env") in message
    assert "crashes.env_file" in message


def test_timeouts_are_retried(crashstats):
    crashstats.fault_rate = 1.0
    crashstats.fault_kinds = ("slow",)
    crashstats.slow_seconds = 1.0
    client, sleeps = make_client(crashstats, timeout=0.2)

    def heal(seconds):  # the server recovers after the first timeout
        sleeps.append(seconds)
        crashstats.fault_rate = 0.0

    client.sleep = heal
    assert client.post("/api/Reprocessing/", [("crash_ids", ID)]) is True
    assert client.retries == 1 and crashstats.faults_injected["slow"] == 1
