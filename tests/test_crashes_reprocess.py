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


def test_changed_input_with_an_old_journal_asks_for_restart(
    invoke, crashstats, crashstats_env, tmp_path
):
    ids = ids_of(crashstats, 100)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    crashstats.fault_rate = 1.0
    crashstats.fault_kinds = ("500",)
    env = dict(crashstats_env, INVOKE_CRASHES_MAX_ATTEMPTS="2")
    assert reprocess(invoke, crashstats, env, "--input", str(path)).returncode == 1
    crashstats.fault_rate = 0.0
    path.write_text("\n".join(ids[:60]) + "\n")
    result = reprocess(invoke, crashstats, env, "--input", str(path))
    assert result.returncode == 1 and "--restart" in result.stderr
    assert not crashstats.accepted
    result = reprocess(invoke, crashstats, env, "--input", str(path), "--restart")
    assert result.returncode == 0, result.stderr
    assert set(crashstats.accepted) == set(ids[:60])


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
