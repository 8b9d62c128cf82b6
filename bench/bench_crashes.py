"""Benchmark: `crashes.reprocess` / `crashes.fetch-ids` side by side with crashstats-tools.

Both tools talk to the same fake Crash Stats server (tests/fake_crashstats.py, run in this
process on 127.0.0.1). crashstats-tools (PyPI, pinned below) is installed into its own virtualenv
under bench/out/ on the first run; it is a reference for comparison, not a project dependency.

    /work/main/.venv/bin/python bench/bench_crashes.py            # everything (~5-10 min)
    /work/main/.venv/bin/python bench/bench_crashes.py --quick    # smaller inputs, no 1M run

Scenarios: reprocessing 20,000 ids with no sleep; the same against a server limited to 600
requests a minute; fetching 10,000 and 50,000 ids (the latter beyond Super Search's 10,000
window); the peak memory of reprocessing 1,000,000 ids. Results: printed, and written to
bench/out/results.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_crashstats import (  # noqa: E402
    GOOD_TOKEN,
    SIGNATURE,
    FakeCrashStats,
    generate_crashes,
)

REFERENCE = "crashstats-tools==2.1.0"
OUT = ROOT / "bench" / "out"
REF_VENV = OUT / "crashstats-tools-venv"
DATE_FROM, DATE_TO = "2026-11-01", "2026-11-07"  # the data set spans 6 days

# Runs a command and reports its wall time and peak RSS (of that command alone).
_MEASURE = r"""
import json, resource, subprocess, sys, time
out, stdin_path, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
stdin = open(stdin_path, "rb") if stdin_path != "-" else subprocess.DEVNULL
started = time.monotonic()
proc = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
elapsed = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
json.dump({"elapsed": elapsed, "peak_kib": peak, "rc": proc.returncode,
           "stdout": proc.stdout.decode("utf-8", "replace"),
           "stderr": proc.stderr.decode("utf-8", "replace")[-3000:]}, open(out, "w"))
"""


def ensure_reference() -> Path:
    """Create bench/out/crashstats-tools-venv with the pinned crashstats-tools, once."""
    python = REF_VENV / "bin" / "python"
    if not (REF_VENV / "bin" / "reprocess").exists():
        print(f"installing {REFERENCE} into {REF_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", REFERENCE],
            check=True,
        )
    return REF_VENV / "bin"


def measure(cmd: list[str], env: dict[str, str], stdin: Path | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    subprocess.run(
        [sys.executable, "-c", _MEASURE, result_path, str(stdin) if stdin else "-", *cmd],
        env=env,
        check=True,
    )
    result = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    return result


def ours(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]


def base_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "SOCORRO_"))}
    env.update(
        SOCORRO_REPROCESS_API_TOKEN=GOOD_TOKEN,
        CRASHSTATS_API_TOKEN=GOOD_TOKEN,
        INVOKE_CRASHES_CACHE_DIR=str(cache),
        INVOKE_CRASHES_PROGRESS_INTERVAL="30",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    return env


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


def synthetic_ids(count: int) -> list[str]:
    return [f"{n:08x}-aaaa-4bbb-8ccc-{n % 16**6:06x}261101" for n in range(count)]


def reprocess_pair(
    name: str,
    ids_file: Path,
    count: int,
    env: dict,
    ref_bin: Path,
    fake_kwargs: dict,
    ref_sleep: int = 0,
    tools: tuple[str, ...] = ("ours", "crashstats-tools"),
) -> dict:
    row: dict = {"scenario": name, "ids": count}
    for tool in tools:
        fake = FakeCrashStats(keep_bodies=False, **fake_kwargs).start()
        try:
            if tool == "ours":
                cmd = ours(
                    "crashes.reprocess",
                    "--host",
                    fake.url,
                    "--input",
                    str(ids_file),
                    "--allow-many",
                    "--sleep",
                    "0",
                    "--restart",
                )
                result = measure(cmd, env)
            else:
                cmd = [
                    str(ref_bin / "reprocess"),
                    "--host",
                    fake.url,
                    "--sleep",
                    str(ref_sleep),
                    "--allow-many",
                    "--no-color",
                ]
                result = measure(cmd, env, stdin=ids_file)
            ok_requests = sum(1 for e in fake.log if e.status == 200)
            row[tool] = {
                "seconds": round(result["elapsed"], 2),
                "peak_mib": round(result["peak_kib"] / 1024, 1),
                "exit": result["rc"],
                "accepted": fake.distinct_accepted,
                "requests_ok": ok_requests,
                "rate_limited": fake.rate_limited,
                "ok_per_minute": round(60 * ok_requests / result["elapsed"], 1),
            }
            if result["rc"] != 0:
                row[tool]["error"] = result["stderr"].strip().splitlines()[-1:]
        finally:
            fake.stop()
    return row


def fetch_pair(name: str, num: int, env: dict, ref_bin: Path, crashes: list) -> dict:
    row: dict = {"scenario": name, "num": num}
    for tool in ("ours", "crashstats-tools"):
        fake = FakeCrashStats(crashes=crashes, keep_bodies=False).start()
        try:
            if tool == "ours":
                cmd = ours(
                    "crashes.fetch-ids",
                    "--host",
                    fake.url,
                    "--signature",
                    SIGNATURE,
                    "--num",
                    str(num),
                    "--date",
                    f"{DATE_FROM}..{DATE_TO}",
                )
            else:
                end = (dt.date.fromisoformat(DATE_TO) + dt.timedelta(days=1)).isoformat()
                cmd = [
                    str(ref_bin / "supersearch"),
                    "--host",
                    fake.url,
                    "--num",
                    str(num),
                    f"--signature=={SIGNATURE}",
                    "--product=Firefox",
                    f"--date=>={DATE_FROM}",
                    f"--date=<{end}",
                    "--no-color",
                ]
            result = measure(cmd, env)
            ids = result["stdout"].split()
            row[tool] = {
                "seconds": round(result["elapsed"], 2),
                "exit": result["rc"],
                "ids": len(ids),
                "distinct": len(set(ids)),
                "requests": len(fake.log),
            }
            if result["rc"] != 0:
                row[tool]["error"] = result["stderr"].strip().splitlines()[-1:]
        finally:
            fake.stop()
    return row


def ratio(ref: float, mine: float) -> str:
    return f"{ref / mine:.2f}x" if mine else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, skip 1M run")
    parser.add_argument(
        "--ref-limited-ids",
        type=int,
        default=2_000,
        help="ids crashstats-tools sends with its default --sleep 1 against the rate-limited "
        "server (its rate does not depend on the count; 20000 takes ~7 minutes)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["plain", "limited", "fetch", "million"],
        help="run only these scenarios (repeatable); default: all",
    )
    args = parser.parse_args()
    only = set(args.only or ["plain", "limited", "fetch", "million"])
    OUT.mkdir(parents=True, exist_ok=True)
    ref_bin = ensure_reference()
    work = Path(tempfile.mkdtemp(prefix="bench-crashes-"))
    env = base_env(work / "cache")
    many = 5_000 if args.quick else 20_000
    print(f"generating data in {work} ...", file=sys.stderr)
    crashes = generate_crashes(60_000, days=6)
    ids_file = write_ids(work / "ids.txt", [c.uuid for c in crashes[:many]])
    rows = []

    if "plain" in only:
        print(f"1. reprocess {many:,} ids, no sleep ...", file=sys.stderr)
        rows.append(reprocess_pair("reprocess, no sleep", ids_file, many, env, ref_bin, {}))
    if "limited" in only:
        rows.extend(limited_rows(args, crashes, ids_file, many, env, ref_bin, work))
    if "fetch" in only:
        for num in (10_000, 50_000) if not args.quick else (10_000, 25_000):
            print(f"3. fetch-ids --num {num:,} ...", file=sys.stderr)
            rows.append(fetch_pair(f"fetch {num:,}", num, env, ref_bin, crashes))
    if "million" in only and not args.quick:
        print("4. reprocess 1,000,000 ids (peak memory) ...", file=sys.stderr)
        million = write_ids(work / "million.txt", synthetic_ids(1_000_000))
        rows.append(reprocess_pair("reprocess 1,000,000 ids", million, 1_000_000, env, ref_bin, {}))
    report(rows)


def limited_rows(args, crashes, ids_file, many, env, ref_bin, work) -> list[dict]:
    rows = []
    print(f"2. reprocess {many:,} ids against 600 requests/minute ...", file=sys.stderr)
    limited = {"rate_per_minute": 600, "burst": 10}
    row = reprocess_pair("reprocess, 600 req/min, sleep 0", ids_file, many, env, ref_bin, limited)
    rows.append(row)
    ref_count = min(args.ref_limited_ids, many)
    ref_file = write_ids(work / "ref-ids.txt", [c.uuid for c in crashes[:ref_count]])
    print(
        f"   crashstats-tools with its default --sleep 1 on {ref_count:,} ids ...", file=sys.stderr
    )
    sleep_row = reprocess_pair(
        "reprocess, 600 req/min, reference --sleep 1",
        ref_file,
        ref_count,
        env,
        ref_bin,
        limited,
        ref_sleep=1,
        tools=("crashstats-tools",),
    )
    rows.append(sleep_row)
    return rows


def report(rows: list[dict]) -> None:
    (OUT / "results.json").write_text(json.dumps(rows, indent=2))
    print()
    for row in rows:
        print(f"== {row['scenario']}")
        if "ours" not in row:
            ref = row["crashstats-tools"]
            print(f"   crashstats-tools  {json.dumps(ref)}")
            print(
                f"   crashstats-tools: {ref['ok_per_minute']} accepted requests/minute = "
                f"{ref['ok_per_minute'] / 6:.0f}% of the allowed 600"
            )
            continue
        mine, ref = row["ours"], row["crashstats-tools"]
        for tool, data in (("ours", mine), ("crashstats-tools", ref)):
            print(f"   {tool:17} {json.dumps(data)}")
        if "accepted" in mine:
            complete_mine = mine["accepted"] == row["ids"]
            complete_ref = ref["accepted"] == row["ids"]
            print(f"   complete: ours {complete_mine}, crashstats-tools {complete_ref}")
            if complete_mine and complete_ref:
                print(
                    f"   speed ratio (crashstats-tools time / ours): "
                    f"{ratio(ref['seconds'], mine['seconds'])}"
                )
            print(
                f"   peak memory ratio (crashstats-tools / ours): "
                f"{ratio(ref['peak_mib'], mine['peak_mib'])}"
            )
            if "600" in row["scenario"]:
                for tool, data in (("ours", mine), ("crashstats-tools", ref)):
                    print(
                        f"   {tool}: {data['ok_per_minute']} accepted requests/minute = "
                        f"{data['ok_per_minute'] / 6:.0f}% of the allowed 600"
                    )
        else:
            complete_mine = mine["distinct"] == mine["ids"] == row["num"]
            complete_ref = ref["distinct"] == ref["ids"] == row["num"] and ref["exit"] == 0
            print(f"   complete: ours {complete_mine}, crashstats-tools {complete_ref}")
            if complete_mine and complete_ref:
                print(
                    f"   speed ratio (crashstats-tools time / ours): "
                    f"{ratio(ref['seconds'], mine['seconds'])}"
                )
    print(f"\nraw results: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
