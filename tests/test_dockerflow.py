"""lib/dockerflow.py against the fake Dockerflow server: versions, heartbeats, bounded polling."""

from __future__ import annotations

from lib import dockerflow as df

SHA = "a" * 40
OTHER = "b" * 40


def test_fetch_version_and_heartbeat(dockerflow):
    dockerflow.serve(SHA, "101")
    served = df.fetch_version(dockerflow.url, timeout=5)
    assert (served.commit, served.version, served.error) == (SHA, "101", "")
    assert df.fetch_heartbeat(dockerflow.url, timeout=5).ok
    dockerflow.state.healthy = False
    beat = df.fetch_heartbeat(dockerflow.url, timeout=5)
    assert not beat.ok and "HTTP 500" in beat.detail and "check_database=error" in beat.detail
    assert dockerflow.requests("/__version__") == ["/__version__"]


def test_errors_come_back_as_values(dockerflow):
    dockerflow.fail_next(path="/__version__", status=503)
    assert df.fetch_version(dockerflow.url, timeout=5).error == "HTTP 503"
    dockerflow.fail_next(path="/__version__", status=200, body="<html>")
    assert df.fetch_version(dockerflow.url, timeout=5).error == "answer is not JSON"
    dockerflow.fail_next(path="/__version__", drop=True)
    assert df.fetch_version(dockerflow.url, timeout=5).error
    dockerflow.state.missing_version_file = True
    served = df.fetch_version(dockerflow.url, timeout=5)
    assert not served.commit and served.describe() == "no commit in /__version__"
    assert df.fetch_version("http://127.0.0.1:9", timeout=5).error  # nothing listens there


def test_wait_retries_errors_until_the_commit_is_served(dockerflow):
    dockerflow.serve(OTHER, "100")
    dockerflow.fail_next(2, path="/__version__", status=502)
    dockerflow.serve_after(4, SHA, "101")
    seen = []
    result = df.wait_for_commit(
        dockerflow.url, SHA, timeout=30, interval=0.01, progress=lambda t, s: seen.append(s)
    )
    assert result.live and result.last.commit == SHA
    assert [s.error for s in seen[:2]] == ["HTTP 502", "HTTP 502"]
    assert result.polls == len(seen) == 5


def test_wait_times_out_with_what_is_served(dockerflow):
    dockerflow.serve(OTHER, "100")
    clock = iter(range(0, 1000, 10))
    result = df.wait_for_commit(
        dockerflow.url,
        SHA,
        timeout=35,
        interval=10,
        clock=lambda: next(clock),
        sleep=lambda s: None,
    )
    assert not result.live and result.last.commit == OTHER
    assert result.polls <= 5


def test_a_later_commit_that_contains_the_tag_counts():
    served = df.Served(commit=OTHER)
    assert df.serves(served, SHA, contains=lambda a, b: (a, b) == (SHA, OTHER))
    assert not df.serves(served, SHA)
