"""`invoke crashes.reprocess` end to end: the real binary against the fake Crash Stats."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.fake_crashstats import GOOD_TOKEN, READONLY_TOKEN, SIGNATURE

ID = "de1bb258-cbbf-4589-a673-34f800160918"


def ids_of(fake, count=None):
    ids = [crash.uuid for crash in fake.matching("Firefox", SIGNATURE)]
    return ids[:count] if count else ids


def no_secret(fake, *outputs):
    for text in outputs:
        assert GOOD_TOKEN not in text
    assert GOOD_TOKEN not in fake.log_text()
    for entry in fake.log:
        assert GOOD_TOKEN not in entry.query and GOOD_TOKEN not in entry.body


def reprocess(invoke, fake, env, *args, **kwargs):
    return invoke("crashes.reprocess", "--host", fake.url, *args, extra_env=env, **kwargs)


def test_one_crash_id_in_bp_form(invoke, crashstats, crashstats_env):
    result = reprocess(invoke, crashstats, crashstats_env, "--crash-id", f"bp-{ID}")
    assert result.returncode == 0, result.stderr
    assert crashstats.accepted == {ID: 1}
    assert "summary: 1 ids sent and accepted in 1 chunks" in result.stderr
    assert "failed: 0" in result.stderr
    no_secret(crashstats, result.stdout, result.stderr)


def test_file_with_bom_crlf_comments_urls_and_duplicates(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 120)
    lines = ["\ufeff# crashes to redo", ""]
    lines += [f"  bp-{i}  " for i in ids[:40]]
    lines += [f"https://crash-stats.mozilla.org/report/index/{i}" for i in ids[40:80]]
    lines += ids[80:] + ids[:30]  # 30 duplicates
    path = tmp_path / "crashids.txt"
    path.write_bytes("\r\n".join(lines).encode("utf-8"))
    result = reprocess(
        invoke, crashstats, crashstats_env, "--input", str(path), "--chunk-size", "50"
    )
    assert result.returncode == 0, result.stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0
    assert crashstats.reprocess_requests == 3
    assert "duplicates dropped: 30" in result.stderr
    assert not list(tmp_path.glob("*journal*")), "the journal is removed after success"


def test_invalid_lines_are_listed_and_nothing_is_sent(invoke, crashstats, crashstats_env, tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text(f"{ID}\nnot-a-crash\n\n{ID[:-2]}\n")
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 2
    assert f"{path}:2: not a crash id: 'not-a-crash'" in result.stderr
    assert f"{path}:4: not a crash id" in result.stderr
    assert "2 invalid line(s)" in result.stderr and "nothing was sent" in result.stderr
    assert "Traceback" not in result.stderr
    assert crashstats.reprocess_requests == 0
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path), "--skip-invalid")
    assert result.returncode == 0, result.stderr
    assert crashstats.accepted == {ID: 1}
    assert "skipped invalid: 2" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "no crash ids in stdin; nothing was sent (give --crash-id ID, --input FILE"),
        (("--input", "/nonexistent/ids.txt"), "no such file"),
        (("--crash-id", ID, "--ruleset", "everything"), "--ruleset must be one of"),
        (("--crash-id", ID, "--chunk-size", "0"), "--chunk-size must be between 1 and 1000"),
        (("--crash-id", ID, "--chunk-size", "x"), "--chunk-size must be a number"),
        (("--crash-id", ID, "--sleep", "-1"), "--sleep must not be negative"),
        (("--crash-id", "nope"), "1 invalid line(s) in --crash-id"),
    ],
)
def test_bad_input(invoke, crashstats, crashstats_env, args, message):
    result = reprocess(invoke, crashstats, crashstats_env, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert crashstats.reprocess_requests == 0


def test_bad_host(invoke, crashstats_env):
    result = invoke(
        "crashes.reprocess", "--host", "ftp://x", "--crash-id", ID, extra_env=crashstats_env
    )
    assert result.returncode == 1 and "--host must be an http(s) URL" in result.stderr


def test_missing_token_says_where_and_sends_nothing(invoke, crashstats, crashstats_env, tmp_path):
    env = dict(crashstats_env, SOCORRO_REPROCESS_API_TOKEN="")
    result = reprocess(invoke, crashstats, env, "--crash-id", ID, cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "SOCORRO_REPROCESS_API_TOKEN" in result.stderr and str(tmp_path / "my.env") in result.stderr
    )
    assert crashstats.reprocess_requests == 0
    (tmp_path / "my.env").write_text(f"SOCORRO_REPROCESS_API_TOKEN={GOOD_TOKEN}\n")
    result = reprocess(invoke, crashstats, env, "--crash-id", ID, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert crashstats.accepted == {ID: 1}
    no_secret(crashstats, result.stdout, result.stderr)


def test_token_without_permission(invoke, crashstats, crashstats_env):
    env = dict(crashstats_env, SOCORRO_REPROCESS_API_TOKEN=READONLY_TOKEN)
    result = reprocess(invoke, crashstats, env, "--crash-id", ID)
    assert result.returncode == 1
    assert "this token lacks the Reprocess Crashes permission" in result.stderr
    assert READONLY_TOKEN not in result.stderr + result.stdout
    assert not crashstats.accepted


def test_more_than_10000_needs_allow_many(invoke, crashstats, crashstats_env, tmp_path):
    path = tmp_path / "many.txt"
    crashstats.set_crashes([])
    from tests.fake_crashstats import generate_crashes

    path.write_text("\n".join(c.uuid for c in generate_crashes(10_001)) + "\n")
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 2 and "--allow-many" in result.stderr
    assert crashstats.reprocess_requests == 0
    result = reprocess(
        invoke,
        crashstats,
        crashstats_env,
        "--input",
        str(path),
        "--allow-many",
        "--chunk-size",
        "500",
    )
    assert result.returncode == 0, result.stderr
    assert crashstats.distinct_accepted == 10_001


def test_ruleset_is_sent_with_each_id(invoke, crashstats, crashstats_env):
    result = reprocess(
        invoke, crashstats, crashstats_env, "--crash-id", ID, "--ruleset", "regenerate_signature"
    )
    assert result.returncode == 0, result.stderr
    assert crashstats.accepted_rulesets == {"regenerate_signature": 1}
    assert f"crash_ids={ID}%3Aregenerate_signature" in crashstats.log[-1].body


def test_server_400_stops_with_its_message_and_the_offending_id(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 200)
    crashstats.reject_ids = {ids[120]}
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 1
    assert f"Crash id '{ids[120]}' is not valid." in result.stderr
    assert f"offending ids: {ids[120]}" in result.stderr
    assert "failed: 50" in result.stderr
    assert set(crashstats.accepted) == set(ids[:100])
    # Once the server accepts it again, the rerun continues at the refused chunk.
    crashstats.reject_ids = set()
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0


def test_twenty_percent_failing_requests_lose_nothing(invoke, crashstats, crashstats_env, tmp_path):
    ids = ids_of(crashstats)
    crashstats.fault_rate = 0.2
    crashstats.slow_seconds = 0.05
    crashstats.keep_bodies = False
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    result = reprocess(
        invoke, crashstats, crashstats_env, "--input", str(path), "--chunk-size", "20"
    )
    assert result.returncode == 0, result.stderr
    assert sum(crashstats.faults_injected.values()) >= 10, crashstats.faults_injected
    assert set(crashstats.accepted) == set(ids)
    # Only answers lost after the work was done ("drop_after") lead to a chunk sent twice.
    assert crashstats.resent <= 20 * crashstats.faults_injected["drop_after"]
    assert "failed: 0" in result.stderr and "retries: 0;" not in result.stderr
    no_secret(crashstats, result.stdout, result.stderr)


def test_rate_limit_429_is_waited_out(invoke, crashstats, crashstats_env):
    ids = ids_of(crashstats, 300)
    crashstats.rate_per_minute = 3000  # 50/s, bursts of 5
    crashstats.burst = 5
    crashstats.retry_after_whole_seconds = False
    result = reprocess(
        invoke, crashstats, crashstats_env, "--chunk-size", "10", input="\n".join(ids) + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert crashstats.rate_limited > 0
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0
    assert "HTTP 429" in result.stderr


def test_retries_are_bounded_then_a_rerun_resumes(invoke, crashstats, crashstats_env, tmp_path):
    ids = ids_of(crashstats, 500)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    env = dict(crashstats_env, INVOKE_CRASHES_MAX_ATTEMPTS="3")
    crashstats.hold_request = None
    # Let 4 chunks through, then fail everything.
    result_ok = reprocess(
        invoke, crashstats, env, "--input", str(path), "--chunk-size", "50", "--dry-run"
    )
    assert result_ok.returncode == 0 and crashstats.reprocess_requests == 0
    crashstats.fault_rate = 1.0
    crashstats.fault_kinds = ("500",)
    result = reprocess(invoke, crashstats, env, "--input", str(path))
    assert result.returncode == 1
    assert "giving up after 3 attempts" in result.stderr
    assert "rerun the same command to resume" in result.stderr
    assert (tmp_path / "ids.txt.reprocess-journal").exists()
    crashstats.fault_rate = 0.0
    result = reprocess(invoke, crashstats, env, "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0
    assert not (tmp_path / "ids.txt.reprocess-journal").exists()


def _stop_at(fake, ids, index):
    """Make the server refuse ids[index] (HTTP 400): a run stops at that id's chunk, and every
    chunk before it is accepted and journaled."""
    fake.reject_ids = {ids[index]}


def _changed_line(stderr):
    lines = [line for line in stderr.splitlines() if "the input changed" in line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_edited_file_resumes_without_resending(invoke, crashstats, crashstats_env, tmp_path):
    every = ids_of(crashstats)
    ids = every[:200]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    _stop_at(crashstats, ids, 120)  # chunks 1-2 (ids 0-99) accepted, then a 400
    assert reprocess(invoke, crashstats, crashstats_env, "--input", str(path)).returncode == 1
    assert set(crashstats.accepted) == set(ids[:100])
    crashstats.reject_ids = set()
    # The release engineer edits the file: drops 3 accepted ids and 2 not yet sent, adds 20,
    # and re-sorts it.
    added = every[200:220]
    edited = sorted(ids[3:150] + ids[152:] + added)
    path.write_text("\n".join(edited) + "\n")
    dry = reprocess(invoke, crashstats, crashstats_env, "--input", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send 118 ids in 3 chunks" in dry.stderr and crashstats.reprocess_requests == 3
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert _changed_line(result.stderr) == (
        f"resuming from {path}.reprocess-journal (last chunk accepted less than a minute ago); "
        f"the input changed since the journal was written: 97 ids already accepted are "
        f"skipped, 20 new ids to send, 98 still to send from before, 5 no longer in the input "
        f"are not sent (--restart sends everything)"
    )
    assert _changed_line(dry.stderr) == _changed_line(result.stderr)
    assert "reprocessing 118 crash ids" in result.stderr
    # What the server received: each id once; the removed ones that were not sent, never.
    assert set(crashstats.accepted) == set(ids[:150] + ids[152:] + added)
    assert crashstats.resent == 0
    assert ids[150] not in crashstats.accepted and ids[151] not in crashstats.accepted
    assert (
        "summary: 118 ids sent and accepted in 3 chunks (97 accepted by an earlier run); "
        "215/215 done" in result.stderr
    )
    assert not list(tmp_path.glob("*journal*"))


def test_resuming_an_old_journal_says_how_old_it_is(invoke, crashstats, crashstats_env, tmp_path):
    """An abandoned journal taken up days later skips the ids it had as accepted: the resume line
    says when its last chunk was accepted, so that is noticed (and --restart is an option)."""
    import sqlite3

    ids = ids_of(crashstats)[:200]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    _stop_at(crashstats, ids, 120)
    assert reprocess(invoke, crashstats, crashstats_env, "--input", str(path)).returncode == 1
    crashstats.reject_ids = set()
    journal = sqlite3.connect(f"{path}.reprocess-journal")
    with journal:
        journal.execute("UPDATE chunks SET accepted_at = accepted_at - 3 * 86400 - 60")
    journal.close()
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        f"resuming from {path}.reprocess-journal (last chunk accepted 3 days ago): 100 of 200 "
        f"ids were accepted by an earlier run" in result.stderr
    )
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0


def test_age_note_wording():
    from lib.reprocess import _age_note

    assert _age_note(None) == ""
    assert _age_note(1000.0, now=1030.0) == " (last chunk accepted less than a minute ago)"
    assert _age_note(0.0, now=61.0) == " (last chunk accepted 1 minute ago)"
    assert _age_note(0.0, now=2 * 3600 + 5) == " (last chunk accepted 2 hours ago)"
    assert _age_note(0.0, now=86400 * 12) == " (last chunk accepted 12 days ago)"


def test_reordered_file_resumes_and_says_nothing_was_added(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 150)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    _stop_at(crashstats, ids, 60)
    assert reprocess(invoke, crashstats, crashstats_env, "--input", str(path)).returncode == 1
    crashstats.reject_ids = set()
    path.write_text("\n".join(reversed(ids)) + "\n")
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        "50 ids already accepted are skipped, 0 new ids to send, 100 still to send from "
        "before, 0 no longer in the input are not sent" in _changed_line(result.stderr)
    )
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0


def test_stdin_that_gained_ids_resumes_and_unrelated_stdin_is_kept_apart(
    invoke, crashstats, crashstats_env, tmp_path
):
    every = ids_of(crashstats)
    ids = every[:300]
    cache = tmp_path / "crashes-cache"
    _stop_at(crashstats, ids, 160)  # 3 chunks accepted
    first = reprocess(invoke, crashstats, crashstats_env, input="\n".join(ids) + "\n")
    assert first.returncode == 1 and len(list(cache.glob("reprocess-*.sqlite"))) == 1
    crashstats.reject_ids = set()
    # Meanwhile another stdin run with other ids: it shares no id, so it has its own journal.
    others = every[1000:1040]
    other = reprocess(invoke, crashstats, crashstats_env, input="\n".join(others) + "\n")
    assert other.returncode == 0, other.stderr
    assert "resuming" not in other.stderr and "the input changed" not in other.stderr
    assert len(list(cache.glob("reprocess-*.sqlite"))) == 1  # the unfinished one is kept
    # `fetch-ids ... | reprocess` again: the output gained 25 ids and comes in another order.
    regenerated = every[300:325] + list(reversed(ids))
    result = reprocess(invoke, crashstats, crashstats_env, input="\n".join(regenerated) + "\n")
    assert result.returncode == 0, result.stderr
    assert (
        "150 ids already accepted are skipped, 25 new ids to send, 150 still to send from "
        "before, 0 no longer in the input are not sent" in _changed_line(result.stderr)
    )
    assert set(crashstats.accepted) == set(ids + others + every[300:325])
    assert crashstats.resent == 0
    assert not list(cache.glob("reprocess-*"))


def test_crash_ids_given_again_with_one_more_resume(invoke, crashstats, crashstats_env):
    ids = ids_of(crashstats, 3)
    crashstats.reject_ids = {ids[1]}
    args = ["--chunk-size", "1"]
    first = reprocess(
        invoke, crashstats, crashstats_env, *args, "--crash-id", ids[0], "--crash-id", ids[1]
    )
    assert first.returncode == 1 and set(crashstats.accepted) == {ids[0]}
    crashstats.reject_ids = set()
    given = [part for crash_id in ids for part in ("--crash-id", crash_id)]
    result = reprocess(invoke, crashstats, crashstats_env, *args, *given)
    assert result.returncode == 0, result.stderr
    assert "1 ids already accepted are skipped, 1 new ids to send" in result.stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0


def test_a_file_journal_of_another_ruleset_or_host_is_refused(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 100)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    _stop_at(crashstats, ids, 70)
    assert reprocess(invoke, crashstats, crashstats_env, "--input", str(path)).returncode == 1
    crashstats.reject_ids = set()
    result = reprocess(
        invoke,
        crashstats,
        crashstats_env,
        "--input",
        str(path),
        "--ruleset",
        "regenerate_signature",
    )
    assert result.returncode == 1
    assert (
        f"the journal {path}.reprocess-journal was written for ruleset default (this run: "
        f"regenerate_signature); ids accepted for another host or ruleset are never taken as "
        f"done" in result.stderr
    )
    other_host = crashstats.url.replace("127.0.0.1", "localhost")
    result = invoke(
        "crashes.reprocess", "--host", other_host, "--input", str(path), extra_env=crashstats_env
    )
    assert result.returncode == 1
    assert f"was written for host {crashstats.url} (this run: {other_host})" in result.stderr
    assert crashstats.reprocess_requests == 2 and set(crashstats.accepted) == set(ids[:50])
    # `--ruleset default` is what the server does without a ruleset: the same journal.
    result = reprocess(
        invoke, crashstats, crashstats_env, "--input", str(path), "--ruleset", "default"
    )
    assert result.returncode == 0, result.stderr
    assert "50 of 100 ids were accepted by an earlier run" in result.stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0


def test_stdin_of_another_ruleset_is_sent_in_full_and_kept_apart(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 100)
    text = "\n".join(ids) + "\n"
    _stop_at(crashstats, ids, 70)
    assert reprocess(invoke, crashstats, crashstats_env, input=text).returncode == 1
    crashstats.reject_ids = set()
    regen = ("--ruleset", "regenerate_signature")
    result = reprocess(invoke, crashstats, crashstats_env, *regen, input=text)
    assert result.returncode == 0, result.stderr
    assert "resuming" not in result.stderr
    assert crashstats.accepted_rulesets == {"default": 50, "regenerate_signature": 100}
    # The default run's journal is still there and still resumes.
    result = reprocess(invoke, crashstats, crashstats_env, input=text)
    assert result.returncode == 0, result.stderr
    assert "50 of 100 ids were accepted by an earlier run" in result.stderr
    assert crashstats.accepted_rulesets == {"default": 100, "regenerate_signature": 100}
    assert set(crashstats.accepted) == set(ids)
    assert all(crashstats.accepted[crash_id] == 2 for crash_id in ids)


def test_restart_forgets_the_journal_and_resends_everything(
    invoke, crashstats, crashstats_env, tmp_path
):
    every = ids_of(crashstats)
    ids = every[:100]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    _stop_at(crashstats, ids, 70)
    assert reprocess(invoke, crashstats, crashstats_env, "--input", str(path)).returncode == 1
    crashstats.reject_ids = set()
    path.write_text("\n".join(ids + every[100:110]) + "\n")
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path), "--restart")
    assert result.returncode == 0, result.stderr
    assert (
        f"--restart: discarded the journal {path}.reprocess-journal; every id is sent, "
        f"including the 50 it had as accepted" in result.stderr
    )
    assert "the input changed" not in result.stderr and "resuming" not in result.stderr
    assert set(crashstats.accepted) == set(every[:110])
    assert [crashstats.accepted[i] for i in ids[:50]] == [2] * 50
    assert crashstats.resent == 50


def test_journal_of_the_previous_format_is_resumed(invoke, crashstats, crashstats_env, tmp_path):
    """A journal written before the ledger (accepted chunks as a prefix of the input)."""
    import hashlib
    import sqlite3

    ids = ids_of(crashstats, 100)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    digest = hashlib.sha256("".join(f"{i}\n" for i in ids).encode()).hexdigest()
    db = sqlite3.connect(f"{path}.reprocess-journal")
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE ids (seq INTEGER PRIMARY KEY, crash_id TEXT NOT NULL);"
        "CREATE TABLE chunks (last_seq INTEGER PRIMARY KEY, size INTEGER, accepted_at REAL);"
        "CREATE TABLE refused (seq INTEGER PRIMARY KEY, crash_id TEXT NOT NULL, message TEXT);"
    )
    meta = {"version": "1", "input": digest, "host": crashstats.url, "ruleset": ""}
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    db.executemany("INSERT INTO ids VALUES (?, ?)", enumerate(ids, 1))
    db.executemany("INSERT INTO chunks VALUES (?, 20, 0)", [(20,), (40,)])
    db.execute("INSERT INTO refused VALUES (7, ?, 'not valid')", (ids[6],))
    db.commit()
    db.close()
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert "39 of 100 ids were accepted by an earlier run (1 refused by the server)" in (
        result.stderr
    )
    assert set(crashstats.accepted) == set(ids[40:]) and crashstats.resent == 0


@pytest.mark.parametrize("how", ["global", "flag"])
def test_dry_run_lists_chunks_and_sends_nothing(invoke, crashstats, crashstats_env, tmp_path, how):
    ids = ids_of(crashstats, 120)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    args = ["crashes.reprocess", "--host", crashstats.url, "--input", str(path)]
    args = ["--dry", *args] if how == "global" else [*args, "--dry-run"]
    result = invoke(*args, extra_env=crashstats_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"chunk 1: 50 ids, {ids[0]} .. {ids[49]}",
        f"chunk 2: 50 ids, {ids[50]} .. {ids[99]}",
        f"chunk 3: 20 ids, {ids[100]} .. {ids[119]}",
    ]
    assert "nothing was sent" in result.stderr
    assert crashstats.reprocess_requests == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "ids.txt"]


def test_progress_lines_and_summary_on_stderr(invoke, crashstats, crashstats_env):
    ids = ids_of(crashstats, 200)
    result = reprocess(
        invoke, crashstats, crashstats_env, "--chunk-size", "50", input="\n".join(ids)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    progress = [line for line in result.stderr.splitlines() if line.startswith("reprocess: ")]
    assert progress and progress[-1].startswith("reprocess: 200/200 ids accepted (100%)")
    assert "summary: 200 ids sent and accepted in 4 chunks; 200/200 done" in result.stderr


def _default_sigint():
    # A shell without job control starts background jobs with SIGINT ignored, and children
    # inherit that; give the client the default handler so Ctrl-C (SIGINT) means KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(args, env, stdin=None, stdout=subprocess.DEVNULL):
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def test_kill_9_mid_run_then_resume_sends_at_most_one_chunk_again(crashstats, crashstats_env, env):
    ids = ids_of(crashstats)  # 2,000 ids, 40 chunks of 50
    crashstats.hold_request = 15
    full_env = {**env, **crashstats_env}
    args = ["crashes.reprocess", "--host", crashstats.url]
    process = _popen(args, full_env, stdin=subprocess.PIPE)
    process.stdin.write("\n".join(ids) + "\n")
    process.stdin.close()
    assert crashstats.holding.wait(timeout=60), "the client never reached chunk 15"
    os.kill(process.pid, signal.SIGKILL)  # chunk 15 is in flight
    process.wait(timeout=30)
    crashstats.release.set()  # the server still accepts chunk 15 after the client died
    assert process.returncode == -signal.SIGKILL
    for _ in range(200):  # the held handler finishes accepting chunk 15 (bounded wait)
        if crashstats.distinct_accepted == 15 * 50:
            break
        time.sleep(0.05)
    assert crashstats.distinct_accepted == 15 * 50
    crashstats.hold_request = None
    rerun = _popen(args, full_env, stdin=subprocess.PIPE)
    _, stderr = rerun.communicate("\n".join(ids) + "\n", timeout=120)
    assert rerun.returncode == 0, stderr
    assert "resuming from" in stderr and "700 of 2,000 ids were accepted" in stderr
    assert set(crashstats.accepted) == set(ids)
    assert crashstats.resent <= 50  # at most the one chunk that was in flight
    assert GOOD_TOKEN not in stderr


def test_kill_9_mid_run_then_an_edited_file_resends_only_the_chunk_in_flight(
    crashstats, crashstats_env, env, tmp_path
):
    ids = ids_of(crashstats)  # 2,000 ids, 40 chunks of 50
    first, extra = ids[:1500], ids[1500:1530]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(first) + "\n")
    crashstats.hold_request = 15
    full_env = {**env, **crashstats_env}
    args = ["crashes.reprocess", "--host", crashstats.url, "--input", str(path)]
    process = _popen(args, full_env, stdin=subprocess.DEVNULL)
    assert crashstats.holding.wait(timeout=60), "the client never reached chunk 15"
    os.kill(process.pid, signal.SIGKILL)  # chunk 15 is in flight
    process.wait(timeout=30)
    crashstats.release.set()  # the server still accepts chunk 15 after the client died
    for _ in range(200):  # bounded wait for the held handler
        if crashstats.distinct_accepted == 15 * 50:
            break
        time.sleep(0.05)
    assert crashstats.distinct_accepted == 15 * 50
    crashstats.hold_request = None
    # Edited while it was down: 10 ids not yet sent are dropped, 30 added, all re-sorted.
    kept = first[:1000] + first[1010:]
    path.write_text("\n".join(sorted(kept + extra)) + "\n")
    rerun = _popen(args, full_env, stdin=subprocess.DEVNULL)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert (
        "700 ids already accepted are skipped, 30 new ids to send, 790 still to send from "
        "before, 10 no longer in the input are not sent" in _changed_line(stderr)
    )
    assert set(crashstats.accepted) == set(kept + extra)
    assert not set(crashstats.accepted) & set(first[1000:1010])
    # Only the chunk in flight at the kill (accepted, but not yet journaled) went twice.
    assert crashstats.resent == 50
    assert all(crashstats.accepted[i] == 2 for i in first[700:750])


def test_refused_ids_stay_out_after_the_file_is_edited(crashstats, crashstats_env, env, tmp_path):
    every = ids_of(crashstats)
    ids = every[:200]
    bad = ids[60]
    crashstats.reject_ids = {bad}
    crashstats.hold_request = 4  # 1: chunk 1; 2: chunk 2 refused; 3: chunk 2's rest; 4: chunk 3
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    full_env = {**env, **crashstats_env}
    args = ["crashes.reprocess", "--host", crashstats.url, "--input", str(path)]
    process = _popen([*args, "--skip-refused"], full_env, stdin=subprocess.DEVNULL)
    assert crashstats.holding.wait(timeout=60)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    crashstats.release.set()
    for _ in range(200):  # bounded wait for the held handler (chunk 3)
        if crashstats.distinct_accepted == 149:
            break
        time.sleep(0.05)
    crashstats.hold_request = None
    crashstats.reject_ids = set()
    path.write_text("\n".join(ids + every[200:210]) + "\n")
    rerun = _popen(args, full_env, stdin=subprocess.DEVNULL)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert (
        "99 ids already accepted are skipped, 10 new ids to send, 100 still to send from "
        "before, 1 refused by the server stay out, 0 no longer in the input are not sent"
        in _changed_line(stderr)
    )
    assert bad not in crashstats.accepted
    assert set(crashstats.accepted) == set(ids + every[200:210]) - {bad}
    assert crashstats.resent == 50  # chunk 3, in flight at the kill
    assert f"refused by the server and left out: {bad}" in stderr


def test_ctrl_c_keeps_the_journal_and_a_rerun_resumes(crashstats, crashstats_env, env, tmp_path):
    ids = ids_of(crashstats, 500)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    crashstats.hold_request = 4
    full_env = {**env, **crashstats_env}
    args = ["crashes.reprocess", "--host", crashstats.url, "--input", str(path)]
    process = _popen(args, full_env, stdin=subprocess.DEVNULL)
    assert crashstats.holding.wait(timeout=60)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    crashstats.release.set()
    assert process.returncode == 130, stderr
    assert "interrupted; rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert Path(f"{path}.reprocess-journal").exists()
    crashstats.hold_request = None
    rerun = _popen(args, full_env, stdin=subprocess.DEVNULL)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent <= 50


def test_memory_stays_flat_for_a_million_ids(tmp_path):
    """Spooling 1,000,000 ids (plus 100,000 duplicates) keeps the process small."""
    script = r"""
import resource, sys
from pathlib import Path
from lib.reprocess import prepare

def lines():
    for n in range(1_000_000):
        yield f"{n:08x}-aaaa-4bbb-8ccc-{n % 16**6:06x}261101\n"
        if n % 10 == 5:
            yield f"{n - 5:08x}-aaaa-4bbb-8ccc-{(n - 5) % 16**6:06x}261101\n"  # a duplicate

plan = prepare(lines(), source="stdin", journal_path=None, cache_dir=Path(sys.argv[1]),
               host="http://x", ruleset="", skip_invalid=False, allow_many=True, restart=False,
               dry_run=False)
chunks = sum(1 for _ in plan.journal.pending_chunks(50))

def peak_kib():
    # VmHWM: this program's own peak. ru_maxrss would also count the test process it was
    # forked from (Linux keeps it across exec), which grows with the tests run before.
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))

print(plan.stats.distinct, plan.stats.duplicates, chunks, peak_kib())
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    distinct, duplicates, chunks, peak_kib = map(int, result.stdout.split())
    assert (distinct, duplicates, chunks) == (1_000_000, 100_000, 20_000)
    assert peak_kib < 80 * 1024, f"peak RSS {peak_kib} KiB"


_CHANGED_MILLION = r"""
import sys
from pathlib import Path
from lib.reprocess import prepare

def ident(n):
    return f"{n:08x}-aaaa-4bbb-8ccc-{n % 16**6:06x}261101\n"

def peak_kib():
    status = Path("/proc/self/status").read_text()
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))

options = dict(source="stdin", journal_path=None, cache_dir=Path(sys.argv[1]), host="http://x",
               ruleset="", skip_invalid=False, allow_many=True, restart=False, dry_run=False)
if sys.argv[2] == "first":  # 1,000,000 ids, the first 500,000 accepted, then the run stops
    plan = prepare((ident(n) for n in range(1_000_000)), **options)
    for number, chunk in enumerate(plan.journal.pending_chunks(1000), 1):
        plan.journal.mark_accepted(chunk)
        if number == 500:
            break
    plan.close()
else:  # regenerated: 1,000 ids fewer, 2,000 more, in reverse order
    def lines():
        for n in range(999_999, 999, -1):
            yield ident(n)
        for n in range(1_000_000, 1_002_000):
            yield ident(n)
    plan = prepare(lines(), **options)
    c = plan.changes
    chunks = sum(1 for _ in plan.journal.pending_chunks(50))
    print(c.skipped, c.new, c.still, c.removed, chunks, peak_kib())
"""


def test_memory_stays_flat_resuming_a_changed_million_ids(tmp_path):
    """Carrying a journal of 500,000 accepted ids over to a changed input of a million."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc/self/status (VmHWM) to measure the peak")

    def step(name):
        return subprocess.run(
            [sys.executable, "-c", _CHANGED_MILLION, str(tmp_path), name],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )

    first = step("first")
    assert first.returncode == 0, first.stderr
    second = step("second")
    assert second.returncode == 0, second.stderr
    skipped, new, still, removed, chunks, peak_kib = map(int, second.stdout.split())
    assert (skipped, new, still, removed) == (499_000, 2_000, 500_000, 1_000)
    assert chunks == 502_000 // 50
    assert peak_kib < 80 * 1024, f"peak RSS {peak_kib} KiB"


def test_progress_bar_on_a_terminal(crashstats, crashstats_env, env):
    """With stderr on a terminal, rich draws a bar with the count, rate and ETA."""
    import pty

    ids = ids_of(crashstats, 100)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(PROJECT_ROOT),
            "crashes.reprocess",
            "--host",
            crashstats.url,
            "--chunk-size",
            "10",
        ],
        cwd=PROJECT_ROOT,
        env={**env, **crashstats_env, "COLUMNS": "120", "TERM": "xterm"},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    process.stdin.write(("\n".join(ids) + "\n").encode())
    process.stdin.close()
    output = b""
    while True:  # read until the child closes the terminal (bounded by the child's lifetime)
        try:
            data = os.read(controller, 65536)
        except OSError:
            break
        if not data:
            break
        output += data
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = output.decode("utf-8", "replace")
    assert "100/100" in text and "ids/s" in text and "ETA" in text
    assert "reprocess: " not in text  # no plain progress lines on a terminal
    assert "summary: 100 ids sent and accepted in 10 chunks" in text
    assert set(crashstats.accepted) == set(ids)


def test_journal_option_puts_the_journal_where_asked(invoke, crashstats, crashstats_env, tmp_path):
    ids = ids_of(crashstats, 100)
    journal = tmp_path / "state" / "run.journal"
    journal.parent.mkdir()  # a journal's directory must exist (a typo is not created)
    crashstats.reject_ids = {ids[70]}
    args = ("--journal", str(journal), "--chunk-size", "50")
    result = reprocess(invoke, crashstats, crashstats_env, *args, input="\n".join(ids))
    assert result.returncode == 1 and journal.exists()
    assert str(journal) in result.stderr
    crashstats.reject_ids = set()
    result = reprocess(invoke, crashstats, crashstats_env, *args, input="\n".join(ids))
    assert result.returncode == 0, result.stderr
    assert "50 of 100 ids were accepted" in result.stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0
    assert not journal.exists()


def test_a_second_run_of_the_same_input_is_refused_while_the_first_sends(
    invoke, crashstats, crashstats_env, env, tmp_path
):
    ids = ids_of(crashstats, 300)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    crashstats.hold_request = 2
    args = ["crashes.reprocess", "--host", crashstats.url, "--input", str(path)]
    first = _popen(args, {**env, **crashstats_env}, stdin=subprocess.DEVNULL)
    assert crashstats.holding.wait(timeout=60)
    second = invoke(*args, extra_env=crashstats_env)
    crashstats.release.set()
    assert second.returncode == 1
    assert "another crashes.reprocess is already sending this input" in second.stderr
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert set(crashstats.accepted) == set(ids) and crashstats.resent == 0


def test_journal_that_is_not_a_journal_is_refused(invoke, crashstats, crashstats_env, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("precious notes\n")
    result = reprocess(
        invoke, crashstats, crashstats_env, "--crash-id", ID, "--journal", str(other)
    )
    assert result.returncode == 1 and "is not a journal of crashes.reprocess" in result.stderr
    assert other.read_text() == "precious notes\n" and crashstats.reprocess_requests == 0


def test_restart_never_replaces_a_file_that_is_not_a_journal(
    invoke, crashstats, crashstats_env, tmp_path
):
    other = tmp_path / "empty.db"
    other.write_bytes(b"")
    args = ("--crash-id", ID, "--journal", str(other), "--restart")
    result = reprocess(invoke, crashstats, crashstats_env, *args)
    assert result.returncode == 1 and "is not a journal of crashes.reprocess" in result.stderr
    assert other.read_bytes() == b"" and crashstats.reprocess_requests == 0


def test_skip_refused_leaves_out_the_ids_a_400_names_and_sends_the_rest(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 200)
    bad = {ids[120], ids[130]}  # two in the same chunk: the server names one at a time
    crashstats.reject_ids = set(bad)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    first = reprocess(invoke, crashstats, crashstats_env, "--input", str(path))
    assert first.returncode == 1
    assert "rerun the same command with --skip-refused" in first.stderr
    assert set(crashstats.accepted) == set(ids[:100])
    # The rerun keeps the journal: nothing accepted is sent again, the refused ids stay out.
    second = reprocess(invoke, crashstats, crashstats_env, "--input", str(path), "--skip-refused")
    assert second.returncode == 0, second.stderr
    assert set(crashstats.accepted) == set(ids) - bad
    assert crashstats.resent == 0 and not set(crashstats.accepted) & bad
    assert "resuming from" in second.stderr
    assert f"refused by the server and left out: {ids[120]}, {ids[130]}" in second.stderr
    assert "100/200 done" not in second.stderr
    assert "200/200 done" in second.stderr and "refused by the server: 2;" in second.stderr
    no_secret(crashstats, first.stderr, second.stderr)


def test_skip_refused_in_one_run_sends_every_other_id_once(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 150)
    crashstats.reject_ids = {ids[10], ids[60]}
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    # Two chunks each with a refused id, in one run: the rest of each chunk goes through.
    first = reprocess(invoke, crashstats, crashstats_env, "--input", str(path), "--skip-refused")
    assert first.returncode == 0, first.stderr
    assert set(crashstats.accepted) == set(ids) - {ids[10], ids[60]}
    assert crashstats.resent == 0
    assert "refused by the server: 2;" in first.stderr
    assert "150/150 done" in first.stderr


def test_input_that_is_a_directory_is_named_as_such(invoke, crashstats, crashstats_env, tmp_path):
    result = reprocess(invoke, crashstats, crashstats_env, "--input", str(tmp_path))
    assert result.returncode == 1
    assert f"--input {tmp_path}: is a directory" in result.stderr
    assert "no such file" not in result.stderr and crashstats.log == []


def test_invalid_token_is_not_reported_as_a_missing_permission(invoke, crashstats, crashstats_env):
    env = dict(crashstats_env, SOCORRO_REPROCESS_API_TOKEN="not-a-token-anymore-1234")
    result = reprocess(invoke, crashstats, env, "--crash-id", ID)
    assert result.returncode == 1
    assert "the Crash Stats token is not valid (HTTP 403: Invalid API token)" in result.stderr
    assert "lacks the Reprocess Crashes permission" not in result.stderr
    assert "not-a-token-anymore-1234" not in result.stderr + result.stdout
    assert not crashstats.accepted


@pytest.mark.parametrize("dry", [False, True])
def test_journal_in_a_missing_directory_is_refused(
    invoke, crashstats, crashstats_env, tmp_path, dry
):
    missing = tmp_path / "no" / "such" / "dir"
    args = ["--crash-id", ID, "--journal", str(missing / "j")] + (["--dry-run"] if dry else [])
    result = reprocess(invoke, crashstats, crashstats_env, *args)
    assert result.returncode == 1
    assert f"the directory {missing} does not exist" in result.stderr
    assert not (tmp_path / "no").exists() and crashstats.log == []


def test_skip_refused_kill_9_after_a_refusal_then_resume(crashstats, crashstats_env, env, tmp_path):
    """Killed while the rest of a chunk is resent after a refusal: the rerun keeps the refusal
    from the journal, resends at most that chunk, and never sends the refused id again."""
    ids = ids_of(crashstats, 150)  # 3 chunks of 50
    bad = ids[60]
    crashstats.reject_ids = {bad}
    crashstats.hold_request = 3  # 1: chunk 1; 2: chunk 2 refused (400); 3: chunk 2's rest
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    full_env = {**env, **crashstats_env}
    args = ["crashes.reprocess", "--host", crashstats.url, "--input", str(path), "--skip-refused"]
    process = _popen(args, full_env, stdin=subprocess.DEVNULL)
    assert crashstats.holding.wait(timeout=60), "the client never resent the refused chunk"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    crashstats.release.set()
    for _ in range(200):  # the held handler finishes accepting chunk 2's rest (bounded wait)
        if crashstats.distinct_accepted == 99:
            break
        time.sleep(0.05)
    assert crashstats.distinct_accepted == 99
    crashstats.hold_request = None
    rerun = _popen(args, full_env, stdin=subprocess.DEVNULL)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert "resuming from" in stderr
    assert set(crashstats.accepted) == set(ids) - {bad} and bad not in crashstats.accepted
    assert crashstats.resent <= 49  # at most the rest of the chunk that was in flight
    assert "150/150 done" in stderr and "refused by the server: 1;" in stderr
    assert f"refused by the server and left out: {bad}" in stderr
